"""The benchmarks' inputs: the real clips (windows of the videos in
``../shared/data/videos``) and private catalogs over them and over generated
demo frames, so that no benchmark ever touches the project's own stores."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import PROJECT_ROOT, SCRATCH_BASE, VIDEOS

# -- the real clips -------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One real clip of ../shared/data/videos, or a window of it (positions start..stop-1)."""

    name: str
    path: Path
    start: int = 0
    stop: int | None = None  # None = to the end

    def record(self, dataset: str = "bench"):
        """A SampleRecord over the window, no apex (the pipeline estimates it), like a sheet without one."""
        from schemas.sample_record import FrameSource, SampleRecord

        stop = self.stop if self.stop is not None else count_video_frames(self.path)
        return SampleRecord(dataset=dataset, subject="bench", clip=self.name,
                            source=FrameSource(kind="video", path=self.path),
                            onset=self.start, offset=stop - 1, onset_index=self.start, offset_index=stop - 1,
                            emotion="unknown")


def count_video_frames(path: Path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


# Default clips. WolfgangLanger is 472 frames (640x360): a 90-frame window
# keeps one clip at micro-expression-dataset length. face_noface / noface_face
# (960x540) lose / gain the face (dlib finds it on frames 0-70 and 100-168):
# the 60-frame windows keep the part with a face, since the pipeline fails a
# clip with missing faces by default (face.missing_face="fail"); the last frame
# of noface_face (position 168) has no face either.
REAL_CLIPS: dict[str, Clip] = {
    "single_face": Clip("single_face", VIDEOS / "single_face.mp4"),
    "wolfgang_0_90": Clip("wolfgang_0_90", VIDEOS / "WolfgangLanger_Pexels.mp4", 0, 90),
    "face_noface_0_60": Clip("face_noface_0_60", VIDEOS / "face_noface.mov", 0, 60),
    "noface_face_100_160": Clip("noface_face_100_160", VIDEOS / "noface_face.mov", 100, 160),
}


def resolve_clip(name: str) -> Clip:
    """A clip by name; a negative start counts from the end of the video."""
    if name not in REAL_CLIPS:
        raise SystemExit(f"unknown clip {name!r}; known: {', '.join(REAL_CLIPS)}")
    clip = REAL_CLIPS[name]
    if clip.start < 0:
        total = count_video_frames(clip.path)
        clip = Clip(clip.name, clip.path, total + clip.start, clip.stop)
    return clip


def read_clip_frames(clip: Clip):
    """(T, H, W, 3) uint8 BGR frames of the window, decoded plainly with OpenCV."""
    import cv2
    import numpy as np

    capture = cv2.VideoCapture(str(clip.path))
    frames = []
    try:
        position = 0
        while True:
            ok, frame = capture.read()
            if not ok or (clip.stop is not None and position >= clip.stop):
                break
            if position >= clip.start:
                frames.append(frame)
            position += 1
    finally:
        capture.release()
    return np.stack(frames)


# -- private catalogs (never the project's stores) ------------------------------------

DEMO_DEFAULTS = {"n_subjects": 5, "clips_per_emotion": 2, "seed": 0}


def project_demo_options() -> dict:
    """The options of the project catalog's ``demo`` entry (its pipeline overrides included)."""
    import yaml

    catalog = yaml.safe_load((PROJECT_ROOT / "data_catalog.yaml").read_text())
    return dict(catalog["datasets"]["demo"].get("options") or {})


def shared_demo_root(demo: dict) -> Path:
    """Generated demo frames shared by the benchmark scripts (regenerated only if parameters differ)."""
    return SCRATCH_BASE / f"demo_raw_s{demo['n_subjects']}_c{demo['clips_per_emotion']}_seed{demo['seed']}"


def write_bench_catalog(folder: Path, clips: list[Clip] | None = None, demo: dict | None = None,
                        real_pipeline: dict | None = None) -> Path:
    """A catalog in ``folder`` with a ``real`` dataset (generic CSV over the video windows, default
    PipelineConfig) and/or a ``demo`` dataset (the project's demo entry with ``demo`` overriding its
    size options). Stores and generated frames live in ``folder``; the catalog root is ``/`` so the
    shared videos are used in place."""
    import csv

    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    datasets: dict = {}
    if clips:
        sheet = folder / "real_clips.csv"
        with sheet.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["subject", "clip", "onset", "apex", "offset", "emotion", "aus", "source"])
            for clip in clips:
                stop = clip.stop if clip.stop is not None else count_video_frames(clip.path)
                writer.writerow(["bench", clip.name, clip.start, "", stop - 1, "unknown", "", str(clip.path)])
        datasets["real"] = {"adapter": "generic_csv", "root": "/", "annotations": str(sheet),
                            "store": str(folder / "real.zarr")}
        if real_pipeline:
            raise ValueError("the generic_csv adapter takes no pipeline overrides; use the default config")
    if demo is not None:
        options = {**project_demo_options(), **demo}
        datasets["demo"] = {"adapter": "synthetic", "root": str(shared_demo_root(options)),
                            "store": str(folder / "demo.zarr"),
                            "fps": 100, "options": options}
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump({"root": "/", "datasets": datasets}, sort_keys=False))
    return path
