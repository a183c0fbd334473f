"""The MEGC 2019 flow-image convention: what HTNet, STSTNet and their descendants read.

The composite's flow images (HTNet's ``datasets/STSNet_whole_norm_u_v_os``, the
``megc2019_flow`` reference data) hold one onset -> apex flow per sample:

    a PNG of IMAGE_SIZE x IMAGE_SIZE pixels, 8 bits per channel;
    R, G, B = u (horizontal flow), v (vertical flow), optical strain;
    each channel min-max normalised over the image to 0..255:
        channel = round(255 * (x - min x) / (max x - min x))      (0 where max x = min x)

so that every channel of every image spans 0..255 (true of all 442 reference
images). OpenCV's ``imread`` returns them as B, G, R = (strain, v, u): that array,
as float values 0..255, is STSTNet's input. Files are named ``<subject>_<clip> .png``
(a space before ``.png``), and HTNet finds them through an index CSV of the columns
below (``sub`` and ``filename_o`` make the name; ``label`` is the class index).

Producers of this convention: ``stag_features.export`` (files) and
``stag_model.baselines.megc2019_image`` (the same image as a tensor, STSTNet's input).
"""
from __future__ import annotations

IMAGE_SIZE = 28
LEVELS = 255  # the largest 8-bit value: channels span 0..LEVELS
CHANNELS_RGB: tuple[str, str, str] = ("u", "v", "strain")  # the PNG's R, G, B
CHANNELS_OPENCV: tuple[str, str, str] = ("strain", "v", "u")  # what cv2.imread returns (B, G, R)
FILE_NAME = "{subject}_{clip} .png"
INDEX_FILE = "combined_3_class2_for_optical_flow.csv"  # the name HTNet's code opens
INDEX_COLUMNS: tuple[str, ...] = ("dataset", "sub", "filename_o", "label", "apex", "imagename", "sub_filename")
