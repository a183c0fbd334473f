"""Every configuration option of stag in one table: ``python -m schemas.options_table > docs/options.md``.

The table is made from the typed configs themselves (name, default, description of each field), so
it cannot drift from the code; a test compares it with docs/options.md.
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from schemas.pipeline_config import EXECUTION_ONLY, PipelineConfig
from schemas.store_config import CompositeImportConfig
from schemas.synthetic_config import SyntheticConfig

# (where a user sets it, the config class); pipeline sections are expanded below
TRAINER_CONFIGS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("stag-fit --model-config (STAG)", ModelConfig),
    ("stag-fit --model-config (STSTNet)", StstnetConfig),
    ("stag-fit --train-config", TrainConfig),
    ("stag-fit --data-config", DataConfig),
)
OTHER_CONFIGS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("composite import (defaults; recorded in the store)", CompositeImportConfig),
    ("catalog options.synthetic", SyntheticConfig),
)
LONG_DEFAULT = 40  # characters of a default shown before it is abbreviated


def _default(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    text = json.dumps(value, default=str)
    return text if len(text) <= LONG_DEFAULT else text[:LONG_DEFAULT - 3] + "..."


def _rows(where: str, config: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    instance = config.model_construct() if any(f.is_required() for f in config.model_fields.values()) else config()
    for name, field in config.model_fields.items():
        key = field.alias or name
        default = "(required)" if field.is_required() else _default(getattr(instance, name))
        description = (field.description or "").replace("|", "/").replace("\n", " ")
        rows.append(f"| {where} | `{prefix}{key}` | `{default}` | {description} |")
    return rows


def options_markdown() -> str:
    """The whole page: one table of every option with its default and meaning."""
    lines = [
        "# Options",
        "",
        "Every option of stag's configs, with its default (generated from `schemas/` by",
        "`python -m schemas.options_table > docs/options.md`; a test keeps this page equal to the code).",
        "Pipeline options go in a YAML file of sections (`stag-ingest --config pipeline.yaml`, e.g.",
        "`tvl1: {epsilon: 0.05}`) or a catalog entry's `options.pipeline`; they enter the store's config hash",
        f"except the execution-only ones ({', '.join(sorted(EXECUTION_ONLY))} fields marked below).",
        "Trainer options go in JSON files of overrides (`stag-fit --model-config ablation.json`).",
        "",
        "| set with | option | default | meaning |",
        "|---|---|---|---|",
    ]
    for section, field in PipelineConfig.model_fields.items():
        rule = EXECUTION_ONLY.get(section)
        where = "pipeline (execution only)" if rule is True else "pipeline"
        for row in _rows(where, field.annotation, prefix=f"{section}."):
            name = row.split("`")[1].split(".", 1)[1]
            if isinstance(rule, tuple) and name in rule:
                row = row.replace("| pipeline |", "| pipeline (execution only) |", 1)
            lines.append(row)
    for where, config in TRAINER_CONFIGS + OTHER_CONFIGS:
        lines += _rows(where, config)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(options_markdown(), end="")
