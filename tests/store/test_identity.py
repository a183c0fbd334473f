"""A sample's identity is its content: moving the data, renaming its folders or reordering the sheet
recomputes nothing; editing a frame the sample uses or its annotation recomputes that sample only."""
from __future__ import annotations

import csv
import shutil

import cv2

from stag_features.ingest.steps import prepare_ingest, resolve_producer

from .conftest import copy_store, demo_entry, write_catalog  # noqa: TID252

SHEET = "annotations.csv"


def _planned(catalog) -> list[str]:
    """The sample ids the flow's planning would compute."""
    entry, producer = resolve_producer(catalog, "demo")
    return sorted(item.sample_id for item in prepare_ingest(entry, producer).work)


def _moved(threaded_demo_store, tiny_demo_raw, tmp_path, raw_name: str = "moved_raw"):
    """The raw data and the store copied elsewhere (new absolute paths, a new root folder name)."""
    _catalog, reference = threaded_demo_store
    raw = tmp_path / "elsewhere" / raw_name
    shutil.copytree(tiny_demo_raw, raw)
    store = copy_store(reference, tmp_path / "elsewhere" / "store.zarr")
    return write_catalog(tmp_path, {"demo": demo_entry(raw, store)}), raw


def _rows(raw) -> list[dict]:
    with (raw / SHEET).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(raw, rows: list[dict]) -> None:
    with (raw / SHEET).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_moving_and_renaming_the_data_recomputes_nothing(threaded_demo_store, tiny_demo_raw, tmp_path):
    catalog, _raw = _moved(threaded_demo_store, tiny_demo_raw, tmp_path, raw_name="renamed_root")
    assert _planned(catalog) == []


def test_reordering_the_sheet_and_inserting_a_row_recompute_no_existing_sample(threaded_demo_store, tiny_demo_raw,
                                                                                tmp_path):
    catalog, raw = _moved(threaded_demo_store, tiny_demo_raw, tmp_path)
    rows = _rows(raw)
    first = rows[0]
    shutil.copytree(raw / first["Subject"] / first["Filename"], raw / first["Subject"] / "inserted_clip")
    _write_rows(raw, [{**first, "Filename": "inserted_clip"}, *reversed(rows)])  # every row moves
    assert _planned(catalog) == [f"{first['Subject']}/inserted_clip"]  # the new clip only


def test_editing_a_used_frame_or_an_onset_recomputes_that_sample_only(threaded_demo_store, tiny_demo_raw, tmp_path):
    catalog, raw = _moved(threaded_demo_store, tiny_demo_raw, tmp_path)
    rows = _rows(raw)
    edited, annotated = rows[1], rows[4]
    folder = raw / edited["Subject"] / edited["Filename"]
    frame = sorted(folder.glob("*.png"))[int(edited["ApexFrame"]) - 1]  # a frame inside onset..offset
    image = cv2.imread(str(frame))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(frame), image)
    assert _planned(catalog) == [f"{edited['Subject']}/{edited['Filename']}"]
    rows[4] = {**annotated, "OnsetFrame": str(int(annotated["OnsetFrame"]) + 1)}
    _write_rows(raw, rows)
    assert _planned(catalog) == sorted([f"{edited['Subject']}/{edited['Filename']}",
                                        f"{annotated['Subject']}/{annotated['Filename']}"])


def test_a_frame_outside_onset_offset_is_not_part_of_the_identity(threaded_demo_store, tiny_demo_raw, tmp_path):
    catalog, raw = _moved(threaded_demo_store, tiny_demo_raw, tmp_path)
    row = _rows(raw)[0]
    frames = sorted((raw / row["Subject"] / row["Filename"]).glob("*.png"))
    assert int(row["OffsetFrame"]) < len(frames)  # the clip runs on after its offset
    cv2.imwrite(str(frames[-1]), 255 - cv2.imread(str(frames[-1])))
    assert _planned(catalog) == []
