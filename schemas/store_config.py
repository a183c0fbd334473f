"""Configuration of the Zarr store layout (padding, compression)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_time: int = Field(1024, ge=2, description="padded length of per-clip time series")
