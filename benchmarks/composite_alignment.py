"""How the MEGC 2019 composite's images were read, measured on the data (issue 24).

For the 442 samples, from ``../shared/data`` only (no labels are used):

1. Channel layout of the flow and phase images: for each of the six assignments of the
   three channels to (u, v, strain), the correlation between the strain channel and the
   strain computed from the u, v channels' spatial derivatives; per image the assignment
   that wins, and the mean correlation per assignment.
2. Agreement of the two onset -> apex computations (``megc2019_flow`` and the phase
   images' first phase): per-channel correlation between the two images of a sample, and
   of the phase images' two phases with each other.
3. Crop: where the faces' landmarks fall on each kind of image. Landmarks found by stag's
   face step on the apex faces (224 px) are scaled to the 28 px images, then scaled about
   the centre and shifted over a grid; for each (scale, dx, dy) the mean z-scored strain
   under the 12 eye landmarks (the eyes' blink-free contour moves least, but strain peaks
   on the eyelids and brows in every image). The best grid point per image kind gives the
   crop relation (``CompositePhasesConfig.phase_landmark_scale`` / ``_shift_px``).
4. Faces that needed a border before dlib found them.

    python benchmarks/composite_alignment.py      (about a minute)

Writes ``benchmarks/results/composite_alignment.json``.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy.ndimage import map_coordinates  # noqa: E402

from benchmarks._common import LoadSampler, write_results  # noqa: E402

SCALES = np.round(np.arange(0.75, 1.201, 0.05), 2)
SHIFTS = np.arange(-3.0, 3.01, 0.25)
EYES = slice(36, 48)
SIZE, FACE = 28, 224
PERMUTATIONS = list(itertools.permutations(range(3)))  # OpenCV channel index of (u, v, strain)


def _records():
    from schemas.catalog import load_catalog
    from stag_features.adapters import load_dataset

    entry = load_catalog(Path(__file__).resolve().parents[1] / "data_catalog.yaml").get("megc2019_phases")
    return entry, load_dataset(entry).records


def channel_layout(images: list[np.ndarray]) -> dict:
    """Mean correlation of strain with derived strain per channel assignment, and wins per image."""
    from stag_features.extract.flow import optical_strain

    corr = np.zeros((len(images), len(PERMUTATIONS)))
    for i, bgr in enumerate(images):
        for j, (cu, cv, cs) in enumerate(PERMUTATIONS):
            derived = optical_strain(np.stack([bgr[..., cu], bgr[..., cv]]).astype(np.float32))
            corr[i, j] = np.corrcoef(derived.ravel(), bgr[..., cs].ravel())[0, 1]
    names = ["u=" + "BGR"[p[0]] + " v=" + "BGR"[p[1]] + " s=" + "BGR"[p[2]] for p in PERMUTATIONS]
    wins = np.bincount(np.nanargmax(corr, axis=1), minlength=len(PERMUTATIONS))
    return {name: {"mean_corr": float(np.nanmean(corr[:, j])), "images_won": int(wins[j])}
            for j, name in enumerate(names)}


def agreement(first: list[np.ndarray], second: list[np.ndarray]) -> dict:
    """Mean per-sample correlation of each channel (u = R, v = G, strain = B) between two image lists."""
    out = {}
    for name, channel in (("u", 2), ("v", 1), ("strain", 0)):
        values = [np.corrcoef(a[..., channel].ravel(), b[..., channel].ravel())[0, 1] for a, b in zip(first, second)]
        out[name] = float(np.nanmean(values))
    return out


def crop_scan(images: list[np.ndarray], landmarks: list[np.ndarray]) -> dict:
    """Mean z-scored strain under the eye landmarks for each (scale, dx, dy); best and identity."""
    centre = (SIZE - 1) / 2
    grid = np.array([(s, dx, dy) for s in SCALES for dx in SHIFTS for dy in SHIFTS])
    total = np.zeros(len(grid))
    for bgr, points in zip(images, landmarks):
        strain = bgr[..., 0].astype(np.float64)
        strain = (strain - strain.mean()) / (strain.std() + 1e-9)
        eyes = (points[EYES] + 0.5) * (SIZE / FACE) - 0.5  # pixel centres
        xy = (eyes[None] - centre) * grid[:, None, :1] + centre + grid[:, None, 1:]  # (G, 12, 2)
        sampled = map_coordinates(strain, [xy[..., 1].ravel(), xy[..., 0].ravel()], order=1, mode="nearest")
        total += sampled.reshape(len(grid), -1).mean(1)
    total /= len(images)
    best = int(np.argmax(total))
    identity = int(np.argmin(np.abs(grid - [1.0, 0.0, 0.0]).sum(1)))
    return {"best": {"scale": float(grid[best, 0]), "dx": float(grid[best, 1]), "dy": float(grid[best, 2]),
                     "eye_strain_z": float(total[best])},
            "identity": {"eye_strain_z": float(total[identity])}}


def face_landmarks(faces: list[Path]) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Landmarks on each apex face, the faces that needed a border, and those never found."""
    from schemas.pipeline_config import PipelineConfig
    from schemas.store_config import CompositePhasesConfig
    from stag_features.errors import SampleError
    from stag_features.ingest.composite_phases import face_landmarks as find

    config, phases = PipelineConfig(), CompositePhasesConfig()
    points, helped, missed = [], [], []
    for path in faces:
        try:
            found, border = find(cv2.imread(str(path)), config, phases, path.stem, path)
        except SampleError:
            missed.append(path.name)
            found, border = np.full((68, 2), np.nan, np.float32), 0.0
        if border:
            helped.append(f"{path.name} ({border:.0%} border)")
        points.append(found)
    return points, helped, missed


def main() -> None:
    from stag_features.adapters.megc2019 import flow_image
    from stag_features.ingest.composite_phases import apex_face_file

    entry, records = _records()
    flow_dir, phases_dir = Path(str(entry.options["flow_dir"])), Path(str(entry.options["phases_dir"]))
    face_dir = Path(str(entry.options["apex_face_dir"]))
    with LoadSampler() as load:
        bases = [flow_image(flow_dir, r).name.removesuffix(".png").rstrip() for r in records]
        megc = [cv2.imread(str(flow_image(flow_dir, r))) for r in records]
        phase0 = [cv2.imread(str(phases_dir / f"{b} .png")) for b in bases]
        phase1 = [cv2.imread(str(phases_dir / f"{b}_1 .png")) for b in bases]
        landmarks, helped, missed = face_landmarks([apex_face_file(face_dir, b) for b in bases])
        found = [i for i, p in enumerate(landmarks) if np.isfinite(p).all()]
        figures = {
            "samples": len(records),
            "faces_found": len(found), "faces_needing_a_border": helped, "faces_not_found": missed,
            "channel_layout": {"megc2019_flow": channel_layout(megc), "phase onset->apex": channel_layout(phase0),
                               "phase apex->offset": channel_layout(phase1)},
            "agreement": {"megc onset->apex vs phase onset->apex": agreement(megc, phase0),
                          "megc onset->apex vs phase apex->offset": agreement(megc, phase1),
                          "phase onset->apex vs phase apex->offset": agreement(phase0, phase1)},
            "crop_scan_eyes": {name: crop_scan([imgs[i] for i in found], [landmarks[i] for i in found])
                               for name, imgs in (("megc2019_flow", megc), ("phase onset->apex", phase0),
                                                  ("phase apex->offset", phase1))},
        }
    for section in ("channel_layout", "agreement", "crop_scan_eyes"):
        for name, value in figures[section].items():
            print(f"{section:15s} {name:40s} {value}")
    print("faces found", figures["faces_found"], "with a border:", helped, "missed:", missed)
    write_results("composite_alignment", figures, load,
                  notes=["no labels used; scales and shifts on a grid of 0.05 and 0.25 px"])


if __name__ == "__main__":
    main()
