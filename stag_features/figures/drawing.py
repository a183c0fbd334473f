"""Drawing helpers the figures share: ROI boxes numbered in outlined text with a key beside the
image (legible on any skin, no two names on top of each other), AU bars grouped where the AU cue
cannot tell AUs apart, and the store's face image where it has one."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as effects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from schemas.motion_config import AUConfig  # noqa: E402

OUTLINE = [effects.withStroke(linewidth=2.5, foreground="black")]  # white text on a black rim
ROI_COLOURS = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7")  # Okabe-Ito
KEY_COLUMNS = 3  # columns of the ROI key under the image
FACE_ARRAYS = (("onset_face", "aligned onset face"), ("apex_face", "apex face"))  # in order of preference


def draw_rois(ax, boxes: np.ndarray, names: list[str], scale: float = 1.0, key: bool = True) -> None:
    """ROI boxes (R, 4: x0 y0 x1 y1, scaled by ``scale``) in turn-taking colours, each numbered in
    white outlined text at its top-left corner; ``key``: a legend "number name" under the axes."""
    handles = []
    for r, ((x0, y0, x1, y1), name) in enumerate(zip(np.asarray(boxes, np.float64) * scale, names)):
        colour = ROI_COLOURS[r % len(ROI_COLOURS)]
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.2))
        ax.text(x0, y0, str(r + 1), color="white", fontsize=7, fontweight="bold", ha="left", va="bottom",
                path_effects=OUTLINE)
        handles.append(plt.Rectangle((0, 0), 1, 1, fill=False, edgecolor=colour, label=f"{r + 1} {name}"))
    if key and handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=KEY_COLUMNS, fontsize=6,
                  frameon=False, handlelength=1.0, columnspacing=0.8, title="ROIs", title_fontsize=7)


def stored_face(one) -> tuple[np.ndarray | None, str]:
    """A sample's face image and what it is (``one``: the sample's xarray Dataset): the aligned onset
    face, else the apex face where the store has one (the composite), else (None, "")."""
    for name, kind in FACE_ARRAYS:
        if name in one and float(one[name].max()) > 0:
            return one[name].values, kind
    return None, ""


def au_number(name: str) -> int | None:
    match = re.fullmatch(r"AU(\d+)", name)
    return int(match.group(1)) if match else None


def au_groups(names: list[str], pipeline_config: dict | None) -> list[list[int]]:
    """Indices of ``names`` grouped where the flow-derived cue is one and the same computation: AUs
    whose regions and directions (``AUConfig.directions`` of the store's config, else the defaults)
    are equal, e.g. AU5 and AU7 (both lift the eye regions). Groups keep the order of ``names``."""
    aus = (pipeline_config or {}).get("aus")
    directions = (AUConfig.model_validate(aus) if isinstance(aus, dict) else AUConfig()).directions
    groups: dict[object, list[int]] = {}
    for i, name in enumerate(names):
        spec = directions.get(au_number(name))
        groups.setdefault(spec if spec is not None else ("own", i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])
