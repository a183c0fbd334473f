"""Adapters on small sheets written here: layouts, bad input, frame discovery. Nothing dropped unreported."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from schemas.catalog import DatasetEntry
from stag_features.adapters import AdapterResult, AnnotationError, load_dataset

CASME2_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]


def casme2_sheet(path: Path, rows: list[list[object]], header: list[str] = CASME2_HEADER, sheet: str = "Sheet1") -> Path:
    pd.DataFrame(rows, columns=header).to_excel(path, sheet_name=sheet, index=False)
    return path


def entry(kind: str, annotations: Path, root: Path, **extra: object) -> DatasetEntry:
    return DatasetEntry(name=kind, adapter=kind, root=root, annotations=annotations,
                        store=str(annotations.parent / f"{kind}.zarr"), **extra)


def reasons(result: AdapterResult) -> dict[int | None, str]:
    return {b.row: b.reason for b in result.bad_rows}


def test_casme2_later_layout_with_objective_classes_and_unnamed_columns(tmp_path: Path) -> None:
    header = [*CASME2_HEADER[:5], "Unnamed: 5", *CASME2_HEADER[5:], "Objective Classes", None, None]
    rows = [
        [1, "EP02_01f", 46, 59, 86, None, "12", "happiness", 1, None, "note"],
        [1, "EP03_02", 131, "/", 161, None, "R12", "Others", 7, 3.5, None],
        [26, "EP18_51", 21, 64, 81, None, "4", "disgust", 3, None, None],
    ]
    path = tmp_path / "CASME2-coding-20190701.xlsx"
    pd.DataFrame(rows, columns=[h if h else f"x{i}" for i, h in enumerate(header)]).rename(
        columns={"x9": None, "x10": None}).to_excel(path, index=False)
    result = load_dataset(entry("casme2", path, tmp_path / "raw"))
    assert result.variant == "objective-classes" and result.bad_rows == []
    assert [(r.subject, r.clip, r.apex, r.emotion, r.sheet_row) for r in result.records] == [
        ("sub01", "EP02_01f", 59, "happiness", 2), ("sub01", "EP03_02", None, "others", 3),
        ("sub26", "EP18_51", 64, "disgust", 4)]
    assert [r.labels.get("casme2-5") for r in result.records] == [0, 4, 1]


def test_row_problems_become_bad_rows_naming_file_row_and_reason(tmp_path: Path) -> None:
    path = casme2_sheet(tmp_path / "coding.xlsx", [
        ["01", "EP01", 10, 20, 30, "4", "others"],       # row 2: fine
        ["01", "EP02", 90, 95, 40, "4", "others"],       # row 3: onset after offset
        ["01", "EP01", 11, 21, 31, "4", "others"],       # row 4: duplicate of row 2
        ["02", "EP03", "ten", 20, 30, "4", "others"],    # row 5: onset is not a number
        ["02", "EP04", 10, 20, 30, "4++7", "disgust"],   # row 6: AU cell does not parse
        ["02", "EP05", None, 20, 30, "4", "disgust"],    # row 7: no onset
        ["xx", "EP06", 10, 20, 30, "4", "disgust"],      # row 8: subject is not a number
        ["03", "EP07", 10, None, 30, "?", "fear"],       # row 9: fine (no apex, AU unknown, not in casme2-5)
    ])
    result = load_dataset(entry("casme2", path, tmp_path / "raw"))
    assert [r.sample_id for r in result.records] == ["sub01/EP01", "sub03/EP07"]
    found = reasons(result)
    assert set(found) == {3, 4, 5, 6, 7, 8}
    assert "onset 90 is after offset 40" in found[3] and "sub01/EP02" in found[3]
    assert found[4] == "duplicate clip id 'sub01/EP01' (first at row 2)"
    assert "OnsetFrame 'ten' is not a frame number" in found[5]
    assert "AU cell '4++7'" in found[6]
    assert found[7] == "OnsetFrame is empty"
    assert "Subject 'xx'" in found[8]
    assert all(b.file == path for b in result.bad_rows)
    assert str(result.bad_rows[0]).startswith("coding.xlsx row 3: ")
    # nothing dropped without a report: every data row is a record or a bad row
    assert len(result.records) + len(result.bad_rows) == 8
    assert result.records[1].aus.unknown and "casme2-5" not in result.records[1].labels


def test_missing_sheet_names_file_and_sheets(tmp_path: Path) -> None:
    path = casme2_sheet(tmp_path / "coding.xlsx", [["01", "EP01", 1, 2, 3, "4", "others"]])
    with pytest.raises(AnnotationError, match=r"coding.xlsx has no sheet 'Coding'; it has \['Sheet1'\]"):
        load_dataset(entry("casme2", path, tmp_path, options={"sheet": "Coding"}))


def test_missing_required_column_names_file_row_and_column(tmp_path: Path) -> None:
    header = [h for h in CASME2_HEADER if h != "OffsetFrame"]
    path = casme2_sheet(tmp_path / "coding.xlsx", [["01", "EP01", 1, 2, "4", "others"]], header=header)
    with pytest.raises(AnnotationError, match=r"coding.xlsx: header row 1 lacks required column 'OffsetFrame'"):
        load_dataset(entry("casme2", path, tmp_path))


def test_files_that_are_not_spreadsheets(tmp_path: Path) -> None:
    fake = tmp_path / "coding.xlsx"
    fake.write_text("this is a text file with an xlsx name\n")
    with pytest.raises(AnnotationError, match="coding.xlsx is not a spreadsheet"):
        load_dataset(entry("casme2", fake, tmp_path))
    other = tmp_path / "coding.json"
    other.write_text("{}")
    with pytest.raises(AnnotationError, match="coding.json is not a spreadsheet"):
        load_dataset(entry("samm", other, tmp_path))
    with pytest.raises(AnnotationError, match="unknown option 'shet'"):
        load_dataset(entry("casme2", fake, tmp_path, options={"shet": "x"}))


def test_samm_header_is_found_wherever_it_is(tmp_path: Path) -> None:
    notes = [["SAMM notes"] + [None] * 4, [None] * 5, ["Symbol key"] + [None] * 4]
    header = ["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame"]
    rows = [[6, "006_1_2", 5562, 5588, 5632]]
    table = pd.DataFrame(notes + [header] + rows)
    table.insert(5, "au", [None, None, None, "Action Units", "4+7"])
    table.insert(6, "emo", [None, None, None, "Estimated Emotion", "Anger"])
    path = tmp_path / "samm.xlsx"
    table.to_excel(path, index=False, header=False)
    result = load_dataset(entry("samm", path, tmp_path / "raw"))
    assert result.variant == "original"
    assert [(r.subject, r.clip, r.sheet_row, r.labels) for r in result.records] == [
        ("006", "006_1_2", 5, {"samm-5": 0, "megc2019-3": 0})]


def _frames(folder: Path, numbers: range) -> None:
    folder.mkdir(parents=True)
    for n in numbers:
        (folder / f"img{n}.jpg").write_bytes(b"")


def test_frames_are_discovered_and_positions_resolved(tmp_path: Path) -> None:
    raw = tmp_path / "CASME2_RAW"
    _frames(raw / "sub01" / "EP02_01f", range(46, 87))
    _frames(raw / "sub01" / "EP03_02", range(131, 150))  # offset 161 is missing
    path = casme2_sheet(tmp_path / "coding.xlsx", [
        ["01", "EP02_01f", 46, 59, 86, "12", "happiness"],
        ["01", "EP03_02", 131, 139, 161, "18", "others"],
        ["02", "EP09_01", 26, 56, 125, "1+12", "happiness"],  # no frames at all
    ])
    result = load_dataset(entry("casme2", path, raw))
    ok, short, absent = result.records
    assert ok.source is not None and ok.source.path == raw / "sub01" / "EP02_01f"
    assert (ok.onset_index, ok.apex_index, ok.offset_index) == (0, 13, 40)
    assert short.source is not None and short.offset_index is None
    assert absent.source is None
    found = reasons(result)
    assert "offset frame 161 is not in" in found[3]
    assert "frames of sub02/EP09_01 not found under" in found[4]


def test_generic_csv_with_video_sources(tmp_path: Path, shared_data: Path) -> None:
    root = tmp_path / "lab"
    (root / "p01").mkdir(parents=True)
    (root / "p01" / "smile.mp4").write_bytes((shared_data / "videos" / "single_face.mp4").read_bytes())
    csv = tmp_path / "lab.csv"
    csv.write_text(
        "subject,clip,onset,apex,offset,emotion,aus,source,fps\n"
        "p01,smile,0,30,71,Happiness,6+12,p01/smile.mp4,30\n"
        "p01,found,0,,40,surprise,1+2,,\n"
        "p02,missing,0,10,20,surprise,,p02/none.mp4,\n"
        "\n"
        "p03,late,50,60,10,surprise,5,,\n"
    )
    (root / "p01" / "found.mp4").symlink_to(shared_data / "videos" / "single_face.mp4")
    result = load_dataset(entry("generic_csv", csv, root, fps=25.0, default_scheme="megc2019-3"))
    smile, found, missing = result.records
    assert smile.source is not None and smile.source.kind == "video" and smile.fps == 30.0
    assert (smile.onset_index, smile.apex_index, smile.offset_index) == (0, 30, 71)
    assert smile.labels == {} and smile.emotion == "happiness"  # 'happiness' is not a composite raw label
    assert found.source is not None and found.apex is None and found.fps == 25.0
    assert found.labels == {"megc2019-3": 2}
    assert missing.source is None
    found_reasons = reasons(result)
    assert "p02/none.mp4 of p02/missing does not exist" in found_reasons[4]
    assert "onset 50 is after offset 10" in found_reasons[6]  # the blank line 5 is skipped, numbering kept


def test_generic_csv_sources_stay_inside_the_dataset_root(tmp_path: Path) -> None:
    """A sheet's ``source`` obeys the catalog's rule: after '..' and symbolic links are resolved it must
    lie inside the dataset's root; an escaping row is a bad row naming it, and nothing outside is read."""
    root = tmp_path / "lab"
    (root / "p01" / "inside").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (root / "p01" / "link").symlink_to(outside)
    csv = tmp_path / "lab.csv"
    csv.write_text(
        "subject,clip,onset,apex,offset,emotion,aus,source\n"
        "p01,a,0,1,2,happy,,p01/inside\n"
        f"p01,b,0,1,2,happy,,{outside}\n"
        "p01,c,0,1,2,happy,,../secret\n"
        "p01,d,0,1,2,happy,,p01/link\n"
    )
    result = load_dataset(entry("generic_csv", csv, root))
    assert [r.clip for r in result.records] == ["a"]
    found = reasons(result)
    for row in (3, 4, 5):
        assert "outside the dataset root" in found[row], found
    assert str(outside) in found[3] and "'../secret'" in found[4] and "'p01/link'" in found[5]


def test_generic_csv_requires_its_columns(tmp_path: Path) -> None:
    csv = tmp_path / "lab.csv"
    csv.write_text("subject,clip,onset,offset,emotion\np01,c,0,5,happy\n")
    with pytest.raises(AnnotationError, match="lacks required column 'apex'"):
        load_dataset(entry("generic_csv", csv, tmp_path))


def test_smic_and_composite_find_frames_in_their_raw_layouts(tmp_path: Path, shared_data: Path) -> None:
    """SMIC nests clips by micro/emotion and names frames image<N>.bmp; the composite looks per source dataset."""
    smic_root = tmp_path / "SMIC_HS"
    clip = smic_root / "s20" / "micro" / "negative" / "s20_ne_01"
    clip.mkdir(parents=True)
    for n in range(17581039, 17581056):
        (clip / f"image{n}.bmp").write_bytes(b"")
    smic = load_dataset(entry("smic", shared_data / "annotations" / "smic" / "smic_apex.xlsx", smic_root))
    found = [r for r in smic.records if r.source is not None]
    assert [(r.sample_id, r.onset_index, r.apex_index, r.offset_index) for r in found] == [("s20/s20_ne_01", 0, 7, 16)]
    assert len(smic.bad_rows) == 163 and all("not found under" in b.reason for b in smic.bad_rows)
    assert len(smic.records) == 164  # records without frames are kept and reported

    composite_root = tmp_path / "megc"
    for folder in ("casme2/sub01/EP02_01f", "samm/006/006_1_2", "smic/s1/s1_ne_01"):
        (composite_root / folder).mkdir(parents=True)
        (composite_root / folder / "img1.jpg").write_bytes(b"")
    composite = load_dataset(entry("megc2019", shared_data / "annotations" / "megc2019" / "combined_3class_gt.csv",
                                   composite_root))
    with_frames = {r.sample_id: r.source.path for r in composite.records if r.source is not None}
    assert with_frames == {"sub01/EP02_01f": composite_root / "casme2/sub01/EP02_01f",
                           "006/006_1_2": composite_root / "samm/006/006_1_2",
                           "s01/s01_ne_01": composite_root / "smic/s1/s1_ne_01"}
    assert len(composite.bad_rows) == 442 - 3


def test_sheet_given_by_position(tmp_path: Path) -> None:
    path = casme2_sheet(tmp_path / "coding.xlsx", [["01", "EP01", 1, 2, 3, "4", "others"]])
    assert len(load_dataset(entry("casme2", path, tmp_path, options={"sheet": 0})).records) == 1
    with pytest.raises(AnnotationError, match="has no sheet 3"):
        load_dataset(entry("casme2", path, tmp_path, options={"sheet": 3}))
