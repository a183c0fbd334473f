"""Adapters on the real annotation files: the figures the issue asks for, computed from records."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from schemas.catalog import DatasetEntry
from schemas.class_schemes import get_scheme
from stag_features.adapters import AdapterResult, AnnotationError, load_dataset


def load(shared_data: Path, kind: str, relative: str, tmp_path: Path, **extra: object) -> AdapterResult:
    entry = DatasetEntry(
        name=kind, adapter=kind, root=tmp_path / "no-raw-data", annotations=shared_data / "annotations" / relative,
        store=str(tmp_path / f"{kind}.zarr"), **extra,
    )
    return load_dataset(entry)


def class_counts(result: AdapterResult, scheme: str, by_dataset: bool = False) -> Counter:
    classes = get_scheme(scheme).classes
    return Counter(
        (r.dataset, classes[r.labels[scheme]]) if by_dataset else classes[r.labels[scheme]]
        for r in result.records if scheme in r.labels
    )


def test_casme2(shared_data: Path, tmp_path: Path) -> None:
    result = load(shared_data, "casme2", "casme2/CASME2-coding-20140508.xlsx", tmp_path)
    assert result.bad_rows == [] and result.variant == "2014"
    assert len(result.records) == 255
    assert len({r.subject for r in result.records}) == 26
    counts = class_counts(result, "casme2-5")
    assert sum(counts.values()) == 246
    assert counts == {"happiness": 32, "disgust": 63, "repression": 27, "surprise": 25, "others": 99}
    first = result.records[0]
    assert (first.subject, first.clip, first.onset, first.apex, first.offset) == ("sub01", "EP02_01f", 46, 59, 86)
    assert first.sheet_row == 2 and first.fps == 200.0 and first.source is None
    assert first.aus.au_numbers() == (12,)


def test_samm_header_below_notes(shared_data: Path, tmp_path: Path) -> None:
    result = load(shared_data, "samm", "samm/SAMM_Micro_FACS_Codes_v2.xlsx", tmp_path)
    assert result.bad_rows == [] and result.variant == "objective-classes"
    assert len(result.records) == 159
    assert len({r.subject for r in result.records}) == 29
    counts = class_counts(result, "samm-5")
    assert sum(counts.values()) == 136
    assert counts == {"anger": 57, "other": 26, "happiness": 26, "surprise": 15, "contempt": 12}
    first = result.records[0]
    assert (first.subject, first.clip, first.onset, first.sheet_row) == ("006", "006_1_2", 5562, 15)
    assert first.aus.raw == "4+7"


def test_composite(shared_data: Path, tmp_path: Path) -> None:
    result = load(shared_data, "megc2019", "megc2019/combined_3class_gt.csv", tmp_path,
                  options={"flow_dir": shared_data / "megc2019_flow"})
    assert result.bad_rows == [] and result.variant == "official"  # every record has its flow image
    assert len(result.records) == 442
    assert len({r.subject for r in result.records}) == 68
    assert class_counts(result, "megc2019-3") == {"negative": 250, "positive": 109, "surprise": 83}
    split = class_counts(result, "megc2019-3", by_dataset=True)
    for dataset, (neg, pos, sur) in {"casme2": (88, 32, 25), "samm": (92, 26, 15), "smic": (70, 51, 43)}.items():
        assert (split[(dataset, "negative")], split[(dataset, "positive")], split[(dataset, "surprise")]) == (neg, pos, sur)
    assert {r.subject for r in result.records if r.dataset == "samm"} >= {"006", "037"}


def test_composite_agrees_with_the_source_sheets(shared_data: Path, tmp_path: Path) -> None:
    """The composite's SAMM part is the SAMM sheet under megc2019-3; its CASME II part lacks two disgust clips."""
    composite = load(shared_data, "megc2019", "megc2019/combined_3class_gt.csv", tmp_path)
    samm = load(shared_data, "samm", "samm/SAMM_Micro_FACS_Codes_v2.xlsx", tmp_path)
    casme2 = load(shared_data, "casme2", "casme2/CASME2-coding-20140508.xlsx", tmp_path)

    def labelled(result: AdapterResult, dataset: str | None = None) -> dict[str, int]:
        return {r.sample_id: r.labels["megc2019-3"] for r in result.records
                if "megc2019-3" in r.labels and (dataset is None or r.dataset == dataset)}

    assert labelled(composite, "samm") == labelled(samm)
    extra = set(labelled(casme2)) - set(labelled(composite, "casme2"))
    assert extra == {"sub04/EP12_01f", "sub05/EP09_05f"}
    assert all(labelled(casme2)[k] == v for k, v in labelled(composite, "casme2").items())


def test_composite_blank_line_variant_is_refused(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"'blank-lines' variant.*441 data rows.*not the official"):
        load(shared_data, "megc2019", "megc2019/combined_3class_gt_441_variant.csv", tmp_path)


def test_composite_headered_variant_is_read(shared_data: Path, tmp_path: Path) -> None:
    result = load(shared_data, "megc2019", "megc2019/combined_3_class2_for_optical_flow.csv", tmp_path)
    official = load(shared_data, "megc2019", "megc2019/combined_3class_gt.csv", tmp_path)
    assert result.variant == "headered"
    assert [(r.sample_id, r.labels) for r in result.records] == [(r.sample_id, r.labels) for r in official.records]


def test_smic_missing_offsets_are_kept(shared_data: Path, tmp_path: Path) -> None:
    result = load(shared_data, "smic", "smic/smic_apex.xlsx", tmp_path)
    assert result.bad_rows == [] and len(result.records) == 164
    assert len({r.subject for r in result.records}) == 16
    assert sum(r.offset is None for r in result.records) == 7
    assert class_counts(result, "smic-3") == {"negative": 70, "positive": 51, "surprise": 43}
    assert all(r.fps == 100.0 for r in result.records)


def test_casme3_others_case_and_schemes(shared_data: Path, tmp_path: Path) -> None:
    result = load(shared_data, "casme3", "casme3/casme3_table.xlsx", tmp_path)
    assert result.bad_rows == [] and len(result.records) == 860
    seven = class_counts(result, "casme3-7")
    assert sum(seven.values()) == 860 and seven["others"] == 161  # 158 'others' + 3 'Others'
    four = class_counts(result, "casme3-4")
    assert four["negative"] == seven["anger"] + seven["disgust"] + seven["fear"] + seven["sad"]
    assert len({r.sample_id for r in result.records}) == 860  # several samples per video, unique ids


def test_dfme_fps_per_clip(shared_data: Path, tmp_path: Path) -> None:
    result = load(shared_data, "dfme", "dfme/training_full_with_AU.xlsx", tmp_path)
    assert result.bad_rows == [] and len(result.records) == 1856
    assert Counter(r.fps for r in result.records) == {500.0: 695, 300.0: 605, 200.0: 556}
    assert sum(class_counts(result, "dfme-7").values()) == 1856
