"""The declarative sheet layout shared by the adapters: conventions that every dataset module relies on."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from schemas.catalog import DatasetEntry
from stag_features.adapters import AdapterResult, casme2, casme3, dfme, megc2019, samm
from stag_features.adapters.sheet_layout import SheetLayout, frame_columns, load_sheet
from stag_features.adapters.sheet_reading import text


def entry(kind: str, annotations: Path, **extra: object) -> DatasetEntry:
    return DatasetEntry(name=kind, adapter=kind, root=annotations.parent / "raw", annotations=annotations,
                        store=str(annotations.parent / f"{kind}.zarr"), **extra)


def reasons(result: AdapterResult) -> dict[int | None, str]:
    return {b.row: b.reason for b in result.bad_rows}


def test_frame_columns_put_the_sheets_own_name_first() -> None:
    assert frame_columns("{} Frame") == {
        "onset": ("Onset Frame", "OnsetFrame", "Onset"),
        "apex": ("Apex Frame", "ApexFrame", "Apex"),
        "offset": ("Offset Frame", "OffsetFrame", "Offset"),
    }
    assert casme2.LAYOUT.column_name("onset") == "OnsetFrame"
    assert samm.LAYOUT.column_name("onset") == "Onset Frame"
    assert casme3.LAYOUT.column_name("onset") == "Onset"


def test_a_new_dataset_is_a_layout(tmp_path: Path) -> None:
    """Subject normaliser, clip ids, variant column, frame-rate precedence and identity checks, all declared."""
    layout = SheetLayout(
        columns={"subject": ("Person",), "clip": ("Take",), **frame_columns("{}"), "emotion": ("Feeling",),
                 "fps": ("Rate",), "extra": ("Comment",)},
        required=("subject", "clip", "onset", "apex", "offset", "emotion"),
        header_markers=("Person", "Take"),
        variant="plain",
        variant_columns={"extra": "commented"},
        fps=60.0,
        subject=lambda value: f"p{text(value)}",
        clip_id=lambda take, onset: f"{take}@{onset}",
    )
    sheet = tmp_path / "lab.csv"
    sheet.write_text(
        "a note above the header,,,,,,,\n"
        "Person,Take,Onset,Apex,Offset,Feeling,Rate,Comment\n"
        "1,t1,10,/,20,Happy,,\n"      # row 3: dataset rate (no catalog fps)
        "1,t1,30,35,40,Sad,120,ok\n"  # row 4: its own rate; same take, other onset: other clip id
        ",t2,1,2,3,Sad,,\n"           # row 5: no subject
        "2,t3,,2,3,Sad,,\n"           # row 6: no onset
    )
    result = load_sheet(entry("generic_csv", sheet), layout)
    assert result.variant == "commented"
    assert [(r.subject, r.clip, r.apex, r.fps, r.emotion, r.sheet_row) for r in result.records] == [
        ("p1", "t1@10", None, 60.0, "happy", 3), ("p1", "t1@30", 35, 120.0, "sad", 4)]
    assert reasons(result) == {5: "Person or Take is empty", 6: "Onset is empty"}
    with_catalog_rate = load_sheet(entry("generic_csv", sheet, fps=25.0), layout)
    assert [r.fps for r in with_catalog_rate.records] == [25.0, 120.0]


def test_required_fps_column_is_never_filled_from_the_catalog(tmp_path: Path) -> None:
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Emotion", "EmotionId", "Fps", "AU"]
    rows = [["sub0001", "sub0001_01", 1, 5, 9, "happiness", None, None, "12"],
            ["sub0001", "sub0001_02", 1, 5, 9, "happiness", None, 300, "12"]]
    path = tmp_path / "dfme.xlsx"
    pd.DataFrame(rows, columns=header).to_excel(path, index=False)
    result = dfme.load_records(entry("dfme", path, fps=200.0))
    assert [(r.clip, r.fps) for r in result.records] == [("sub0001_02", 300.0)]
    assert reasons(result) == {2: "Fps '' is not a number"}


def test_composite_rows_name_their_empty_fields_without_a_header(tmp_path: Path) -> None:
    path = tmp_path / "combined_3class_gt.csv"
    path.write_text("casme2,sub01,EP02_01f,1\nsamm,,006_1_2,0\nsmic,s01,s01_po_01,x\n")
    result = megc2019.load_records(entry("megc2019", path))
    assert result.variant == "official"
    assert [(r.dataset, r.sample_id, r.fps, r.onset) for r in result.records] == [("casme2", "sub01/EP02_01f", None, None)]
    found = reasons(result)
    assert found[2] == "dataset, subject or clip is empty"
    assert found[3].startswith("label 'x' is not 0, 1 or 2")
