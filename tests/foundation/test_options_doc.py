"""docs/options.md lists every option of the configs as the code defines them."""
from __future__ import annotations

from pathlib import Path

from schemas.model_config import TrainConfig
from schemas.options_table import options_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "options.md"


def test_the_options_page_is_the_code():
    assert DOC.read_text() == options_markdown(), (
        "docs/options.md is out of date: python -m schemas.options_table > docs/options.md")


def test_the_table_has_one_row_per_option():
    text = options_markdown()
    for name, field in TrainConfig.model_fields.items():
        assert f"| stag-fit --train-config | `{name}` |" in text
    assert "`tvl1.opencv_threads`" in text and "| pipeline (execution only) | `tvl1.opencv_threads`" in text
