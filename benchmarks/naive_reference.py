"""The naive reference: the preprocessing loop most MER repositories use.

Per clip, serially, in one process:

    read every frame of the clip
    dlib: detect the face on the first (onset) frame, 68 landmarks there
    crop every frame to the landmarks' bounding box (no alignment), resize to the crop size, grayscale
    TV-L1 flow from the onset to EVERY other frame
    np.save(<clip>.npy, flows)

with the TV-L1 parameters and crop size of the stag pipeline (PipelineConfig defaults,
or the overrides given as JSON with ``--pipeline-json``, e.g. the demo entry's), including
its DIS initial flow, so that each pair costs the same; ``--zero-init`` starts from zero
flow as OpenCV does by default. OpenCV keeps its default thread count,
as in those repositories. It is written plainly on purpose: it is the
yardstick, not a component of stag.

    python benchmarks/naive_reference.py --clips single_face wolfgang_0_90 --out /tmp/naive
    python benchmarks/naive_reference.py --folders /path/to/clip_frames ...   # numbered image folders
Prints one JSON line per clip and a last line with the totals.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import dlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def read_video(path: Path, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames, position = [], 0
    while True:
        ok, frame = capture.read()
        if not ok or (stop is not None and position >= stop):
            break
        if position >= start:
            frames.append(frame)
        position += 1
    capture.release()
    return frames


def read_folder(folder: Path, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
    names = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    return [cv2.imread(str(p)) for p in names[start:stop]]


def make_tvl1(c, zero_init: bool):
    """OpenCV Dual TV-L1 with stag's parameters (``c``: a TVL1Config)."""
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=c.tau, lambda_=c.lambda_, theta=c.theta, nscales=c.scales, warps=c.warps, epsilon=c.epsilon,
        innnerIterations=c.inner_iterations, outerIterations=c.outer_iterations, scaleStep=c.scale_step,
        gamma=c.gamma, medianFiltering=c.median_filtering, useInitialFlow=not zero_init and c.initial_flow == "dis")
    dis = None
    if not zero_init and c.initial_flow == "dis":
        preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                  "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[c.initial_dis_preset]
        dis = cv2.DISOpticalFlow_create(preset)
    return tvl1, dis


def naive_clip(frames: list[np.ndarray], out_file: Path, detector, predictor, tvl1, dis, crop_size: int) -> dict:
    """One clip, the naive way. Returns counts and seconds by step."""
    seconds = {}
    t = time.perf_counter()
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    faces = detector(gray[0], 1)
    if not faces:
        raise RuntimeError(f"no face on the first frame of {out_file.stem}")
    face = max(faces, key=lambda r: r.width() * r.height())
    shape = predictor(gray[0], face)
    points = np.array([(p.x, p.y) for p in shape.parts()])
    x0, y0 = np.maximum(points.min(axis=0), 0)
    x1, y1 = points.max(axis=0)
    crops = [cv2.resize(g[y0:y1, x0:x1], (crop_size, crop_size)) for g in gray]
    seconds["face_crop"] = time.perf_counter() - t
    t = time.perf_counter()
    onset = crops[0]
    flows = []
    for frame in crops[1:]:
        initial = dis.calc(onset, frame, None) if dis is not None else None
        flows.append(tvl1.calc(onset, frame, initial))
    seconds["tvl1"] = time.perf_counter() - t
    t = time.perf_counter()
    np.save(out_file, np.stack(flows).astype(np.float32))
    seconds["save"] = time.perf_counter() - t
    return {"pairs": len(flows), "bytes": out_file.stat().st_size, **seconds}


def main(argv: list[str] | None = None) -> int:
    from benchmarks._inputs import resolve_clip

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", default=[], help="real clip names (benchmarks/_inputs.py REAL_CLIPS)")
    parser.add_argument("--folders", nargs="*", default=[], type=Path,
                        help="frame folders, each 'PATH' or 'PATH:START:STOP' (0-based positions, stop exclusive)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .npy files")
    parser.add_argument("--zero-init", action="store_true", help="TV-L1 from zero flow instead of the DIS start")
    parser.add_argument("--pipeline-json", default="{}", help="PipelineConfig overrides as JSON (TV-L1 and crop size)")
    args = parser.parse_args(argv)
    from schemas.pipeline_config import PipelineConfig

    config = PipelineConfig.model_validate(json.loads(args.pipeline_json))

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    import face_recognition_models

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    tvl1, dis = make_tvl1(config.tvl1, args.zero_init)
    jobs = []
    for name in args.clips:
        clip = resolve_clip(name)
        jobs.append((clip.name, lambda c=clip: read_video(c.path, c.start, c.stop)))
    for spec in args.folders:
        path, *window = str(spec).split(":")
        start, stop = (int(window[0]), int(window[1])) if window else (0, None)
        jobs.append((f"{Path(path).parent.name}_{Path(path).name}", lambda p=Path(path), a=start, b=stop: read_folder(p, a, b)))
    total = {"clips": 0, "pairs": 0, "bytes": 0, "read": 0.0, "face_crop": 0.0, "tvl1": 0.0, "save": 0.0}
    for name, read in jobs:
        t = time.perf_counter()
        frames = read()
        read_s = time.perf_counter() - t
        row = {"clip": name, "frames": len(frames), "read": read_s,
               **naive_clip(frames, args.out / f"{name}.npy", detector, predictor, tvl1, dis,
                          config.align.crop_size)}
        print(json.dumps(row), flush=True)
        total["clips"] += 1
        for key in ("pairs", "bytes", "read", "face_crop", "tvl1", "save"):
            total[key] += row[key]
    total["wall_s"] = time.perf_counter() - started
    total["opencv_threads"] = cv2.getNumThreads()
    total["zero_init"] = args.zero_init
    total["crop_size"] = config.align.crop_size
    total["tvl1_config"] = config.tvl1.model_dump(mode="json", by_alias=True)
    print(json.dumps({"total": total}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
