"""Errors that name what failed: the sample (or file), the stage and the reason.

Every stage raises SampleError for bad input so that ingestion can record the
failure (sample, stage, reason) in the store instead of dropping the sample.
"""
from __future__ import annotations


class SampleError(ValueError):
    """A sample could not be processed at some stage."""

    def __init__(self, sample: str, stage: str, reason: str):
        self.sample = sample
        self.stage = stage
        self.reason = reason
        super().__init__(f"sample {sample!r}, stage {stage!r}: {reason}")


class NoFaceError(SampleError):
    """No face was found where one is required."""

    def __init__(self, sample: str, reason: str, frames: list[int] | None = None):
        self.frames = list(frames or [])
        super().__init__(sample, "face", reason)
