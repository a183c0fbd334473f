"""SampleRecord: one annotated clip, as every adapter produces it.

AU codes are parsed into structure (see stag_features.adapters.au_codes for the parser
and the grammar it accepts).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AUCode(BaseModel):
    """One FACS code such as ``R12``, ``A2``, ``4D``, ``T18``, ``AD38``, ``ref(6)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number: int = Field(ge=0)
    prefix: str | None = Field(None, description="FACS category letters: AD (action descriptor), M (movement code)")
    side: Literal["L", "R"] | None = Field(None, description="unilateral: left or right side of the face")
    asymmetric: bool = Field(False, description="written A12: both sides, one stronger")
    lip: Literal["T", "B"] | None = Field(None, description="FACS top / bottom lip marker, written T18, B23")
    intensity: str | None = Field(None, description="A..E, or alternatives such as 'A/B'")
    reference: bool = Field(False, description="written ref(N): a referenced, not scored, action")
    uncertain: bool = Field(False, description="written with a trailing '?', e.g. 12?")

    @property
    def is_action_unit(self) -> bool:
        """True for a plain action unit (not an action descriptor or movement code)."""
        return self.prefix is None


class AUTerm(BaseModel):
    """One '+'-separated term: a single code, or alternatives (``R6 or R12``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alternatives: tuple[AUCode, ...] = ()
    text: str | None = Field(None, description="free-text descriptor such as 'soft focus'")


class AUAnnotation(BaseModel):
    """The parsed AU cell of a sheet, with its raw text kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw: str = ""
    terms: tuple[AUTerm, ...] = ()
    unknown: bool = Field(False, description="the cell says '?'")

    def au_numbers(self, include_alternatives: bool = True) -> tuple[int, ...]:
        """Sorted plain AU numbers present (action descriptors excluded)."""
        found: set[int] = set()
        for term in self.terms:
            if not include_alternatives and len({c.number for c in term.alternatives}) > 1:
                continue  # "R6 or R12": the coder was not sure which AU
            codes = term.alternatives
            found.update(c.number for c in codes if c.is_action_unit and not c.reference)
        return tuple(sorted(found))


class FrameSource(BaseModel):
    """Where a clip's frames are: a folder of numbered images, or a video file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["folder", "video"]
    path: Path


class SampleRecord(BaseModel):
    """One clip of a dataset with its annotation.

    onset / apex / offset are frame numbers as the sheet gives them; the
    ``*_index`` fields are positions (0-based) in the frame source once it has
    been resolved (None until then, or where the sheet gives nothing).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    subject: str
    clip: str
    source: FrameSource | None = None
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    onset_index: int | None = None
    apex_index: int | None = None
    offset_index: int | None = None
    fps: float | None = None
    aus: AUAnnotation = Field(default_factory=AUAnnotation)
    emotion: str = ""
    labels: dict[str, int] = Field(default_factory=dict, description="class index per scheme name")
    sheet_row: int | None = Field(None, description="1-based row in the annotation file, for error messages")

    @property
    def sample_id(self) -> str:
        """Unique id within a dataset: ``subject/clip``."""
        return f"{self.subject}/{self.clip}"

    @model_validator(mode="after")
    def _check_order(self) -> "SampleRecord":
        if self.onset is not None and self.offset is not None and self.offset > 0 and self.onset > self.offset:
            raise ValueError(f"sample {self.sample_id}: onset {self.onset} is after offset {self.offset}")
        return self
