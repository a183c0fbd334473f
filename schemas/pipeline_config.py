"""PipelineConfig: every extractor parameter with its default, and a stable hash.

The sections live in their own modules (face_config, motion_config,
store_config); this module assembles them. The hash is the sha256 of the
canonical JSON (sorted keys, no whitespace, aliases) of the whole config, so a
store records exactly what produced it and a changed parameter is detected.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

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
    store: StoreConfig = Field(default_factory=StoreConfig)

    def canonical_json(self) -> str:
        """JSON with sorted keys and no whitespace: the input of `config_hash`."""
        return json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """sha256 hex digest of the canonical JSON."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

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
