"""PipelineConfig: every extractor parameter with its default, and a stable hash.

The sections live in their own modules (face_config, motion_config,
store_config); this module assembles them. The hash is the sha256 of the
canonical JSON (sorted keys, no whitespace, aliases) of the config without its
execution-only fields (``EXECUTION_ONLY``: how a run schedules or threads its
work, never what it computes), so a store records exactly what produced it, a
changed parameter is detected, and a scheduling change reuses the store.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from schemas.appearance_config import AppearanceConfig
from schemas.face_config import AlignConfig, FaceConfig, RoiConfig
from schemas.motion_config import (
    AUConfig,
    GraphConfig,
    MotionConfig,
    RoiFeatureConfig,
    SelectionConfig,
    TVL1Config,
)
from schemas.store_config import StoreConfig
from schemas.store_spec import APPEARANCE_ARRAYS

COLOUR_CHANNELS = {"grey": 1, "colour": 3}  # AppearanceConfig.colour -> channels of the stored images


class ExecutionConfig(BaseModel):
    """How an ingest run spreads its work over tasks. Execution only: outputs are byte-identical
    whatever these are, so they enter neither the config hash nor the store's recorded config.

    A long clip's TV-L1 pairs (onset -> each of the K selected frames) dominate its cost; with one
    task per clip a run cannot finish before its longest clip. A clip whose cost estimate (its
    frames) is at least ``split_min_share`` of one worker's share of the run is therefore split
    into a prepare task (decode, landmarks, alignment, motion), tasks of ``pairs_per_task`` TV-L1
    pairs each, and a finish task (ROIs, AUs, graph, the write). Each task costs ~0.1 s of
    Prefect / Dask CPU, so short clips stay one task (in batches).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pairs_per_task: int = Field(
        2, ge=0, le=64,
        description="TV-L1 pairs per task of a split clip; 0 never splits a clip",
    )
    split_min_share: float = Field(
        0.25, gt=0, le=1,
        description="split a clip when its frames are at least this fraction of the run's frames divided by "
        "the workers (never with one worker)",
    )


# what changes how a run is scheduled or threaded, never what it writes: left out of the hash and the
# provenance. A section maps to True (all of it) or to its execution-only fields.
EXECUTION_ONLY: dict[str, bool | tuple[str, ...]] = {
    "execution": True,
    "tvl1": ("opencv_threads", "device", "torch_threads"),  # threads and device; outputs agree to float noise
    "store": ("lock_timeout_s",),  # how long a writer waits for the lock file
}


def with_added_defaults(recorded: dict, current: dict, defaults: dict) -> dict:
    """``recorded`` (a config a store recorded) completed with the fields ``current`` has and it lacks,
    where ``current`` holds their default (from ``defaults``): a field added to the code after the store
    was written, at a default that reproduces what the code did before, changes nothing the store holds.
    A missing field at another value stays missing, so the two configs still differ."""
    out = dict(recorded)
    for key, value in current.items():
        if key not in recorded:
            if key in defaults and defaults[key] == value:
                out[key] = value
        elif isinstance(value, dict) and isinstance(recorded[key], dict) and isinstance(defaults.get(key), dict):
            out[key] = with_added_defaults(recorded[key], value, defaults[key])
    return out


def without_execution(config_json: dict) -> dict:
    """A config's JSON (``model_dump`` by alias, or one a store recorded, whole or in sections) without
    its execution-only fields: what two configs must share to compute the same store."""
    out = {}
    for section, values in config_json.items():
        rule = EXECUTION_ONLY.get(section)
        if rule is True:
            continue
        out[section] = ({k: v for k, v in values.items() if k not in rule} if rule and isinstance(values, dict)
                        else values)
    return out


def appearance_layout(appearance: AppearanceConfig | dict | None) -> dict:
    """``PipelineConfig.appearance_layout`` of an appearance section (a config or its recorded JSON; None or
    a section without ``enabled`` = off)."""
    if appearance is None:
        return {}
    section = appearance if isinstance(appearance, AppearanceConfig) else AppearanceConfig.model_validate(appearance)
    if not section.enabled:
        return {}
    return {"extra_arrays": APPEARANCE_ARRAYS, "appearance_size": section.size,
            "appearance_channels": COLOUR_CHANNELS[section.colour]}


class PipelineConfig(BaseModel):
    """All parameters of ingestion, in one typed, hashable object."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    face: FaceConfig = Field(default_factory=FaceConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)
    rois: RoiConfig = Field(default_factory=RoiConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    tvl1: TVL1Config = Field(default_factory=TVL1Config)
    roi_features: RoiFeatureConfig = Field(default_factory=RoiFeatureConfig)
    aus: AUConfig = Field(default_factory=AUConfig)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    appearance: AppearanceConfig = Field(default_factory=AppearanceConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    def provenance(self) -> dict:
        """The config as JSON data without its execution-only fields: what a store records."""
        return without_execution(self.model_dump(mode="json", by_alias=True))

    def canonical_json(self) -> str:
        """``provenance()`` with sorted keys and no whitespace: the input of `config_hash`."""
        return json.dumps(self.provenance(), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """sha256 hex digest of the canonical JSON."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def appearance_layout(self) -> dict:
        """The StoreLayout fields a store written under this config adds for its appearance images:
        ``extra_arrays`` (schemas.store_spec.APPEARANCE_ARRAYS), ``appearance_size`` and
        ``appearance_channels``; empty when ``appearance.enabled`` is off."""
        return appearance_layout(self.appearance)

    def with_overrides(self, **sections: dict) -> "PipelineConfig":
        """A copy with some section fields replaced, e.g. ``with_overrides(align={"crop_size": 128})``."""
        data = self.model_dump(by_alias=True)
        for section, values in sections.items():
            if section not in data:
                raise ValueError(f"unknown PipelineConfig section {section!r}; known: {sorted(data)}")
            data[section] = {**data[section], **values}
        return PipelineConfig.model_validate(data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "PipelineConfig":
        """Load a (partial) config from YAML; unspecified parameters keep their defaults."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a pipeline config must be a mapping of sections, got {type(data).__name__}")
        return cls.model_validate(data)
