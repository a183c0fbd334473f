"""Class schemes: loaded from YAML, typed, case-insensitive, per-dataset where needed."""
from __future__ import annotations

from pathlib import Path

import pytest

from schemas.class_schemes import SCHEMES_FILE, ClassScheme, get_scheme, load_schemes, schemes_for


def test_packaged_schemes_are_data_with_the_required_names() -> None:
    schemes = load_schemes()
    assert {"casme2-5", "samm-5", "smic-3", "megc2019-3", "casme3-7", "casme3-4", "dfme-7"} <= set(schemes)
    assert load_schemes(SCHEMES_FILE) == schemes  # the file is the source, not code
    assert get_scheme("casme2-5").classes == ["happiness", "disgust", "repression", "surprise", "others"]
    assert get_scheme("samm-5").classes == ["anger", "happiness", "contempt", "surprise", "other"]
    assert get_scheme("dfme-7").classes[0] == "anger" and get_scheme("dfme-7").classes[6] == "surprise"


def test_index_is_case_insensitive_and_drops_unmapped_labels() -> None:
    casme2 = get_scheme("casme2-5")
    assert casme2.index("Happiness") == casme2.index(" happiness ") == 0
    assert casme2.index("fear") is None and casme2.index("sadness") is None
    casme3 = get_scheme("casme3-7")
    assert casme3.index("Others") == casme3.index("others") == 6
    assert get_scheme("casme3-4").index("sad") == get_scheme("casme3-4").classes.index("negative")
    assert get_scheme("smic-3").index(2.0) == 2


def test_megc2019_uses_the_official_per_dataset_mapping() -> None:
    megc = get_scheme("megc2019-3")
    assert megc.index("fear", "samm") == 0 and megc.index("fear", "casme2") is None
    assert megc.index("repression", "casme2") == 0 and megc.index("contempt", "samm") == 0
    assert megc.index("others", "casme2") is None and megc.index("other", "samm") is None
    assert megc.index("happiness", "samm") == 1 and megc.index("surprise", "casme2") == 2
    assert megc.index("1") == 1  # the composite file's own label
    assert [s.name for s in schemes_for("casme2")] == ["casme2-5", "megc2019-3"]


def test_bad_scheme_files_name_the_scheme(tmp_path: Path) -> None:
    bad = tmp_path / "schemes.yaml"
    bad.write_text("x-2:\n  classes: [a, b]\n  mapping: {one: a, two: c}\n")
    with pytest.raises(ValueError, match=r"x-2.*maps to \['c'\]"):
        load_schemes(bad)
    bad.write_text("y-2:\n  classes: [a, b]\n  colour: red\n")
    with pytest.raises(ValueError, match="y-2.*colour"):
        load_schemes(bad)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_schemes(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="unknown class scheme 'nope'.*casme2-5"):
        get_scheme("nope")
    with pytest.raises(ValueError, match="duplicate class"):
        ClassScheme(name="d", classes=["a", "a"])
