"""The end summary of an ingest: five counts that do not mix, the first failures with their
reasons, bad sheet rows listed, and the command that lists every failure."""
from __future__ import annotations

from stag_features.ingest.plan import FIRST_FAILURES, RunSummary, SampleOutcome


def _summary() -> RunSummary:
    outcomes = [
        SampleOutcome("s1/new", "ok", timings={"tvl1": 1.5}),
        SampleOutcome("s1/kept", "skipped"),  # committed earlier
        SampleOutcome("s1/broken", "skipped"),  # its failure stands
        SampleOutcome("s2/now", "failed", "face", "no face in frame 3"),
        SampleOutcome("s2/row", "failed", "annotation", "onset 9 after offset 3"),
    ]
    recorded = {"s1/broken": ("decode", "frame 7 unreadable"), "s2/now": ("face", "no face in frame 3"),
                "s2/row": ("annotation", "onset 9 after offset 3"), "sheet:a.csv#4": ("annotation", "no subject")}
    return RunSummary("d", "stores/d.zarr", outcomes, bad_rows=2, wall_seconds=4.0, recorded=recorded,
                      phase_seconds={"start-up": 1.0, "planning": 0.5, "computing": 2.5})


def test_earlier_failures_and_earlier_successes_are_counted_apart():
    assert _summary().counts() == {"computed": 1, "reused": 1, "failed": 1, "failed earlier": 1,
                                   "bad sheet rows": 2}


def test_the_table_lists_failures_bad_rows_the_command_and_the_time_per_step():
    table = _summary().table()
    for text in ("s2/now [face] no face in frame 3", "s1/broken [decode] frame 7 unreadable",
                 "s2/row [annotation] onset 9 after offset 3", "sheet:a.csv#4 [annotation] no subject",
                 "stag store failures stores/d.zarr", "start-up 1.0 s, planning 0.5 s, computing 2.5 s"):
        assert text in table, (text, table)
    assert "settled" not in table


def test_only_the_first_failures_are_listed():
    many = [SampleOutcome(f"s/{i}", "failed", "face", f"reason {i}") for i in range(FIRST_FAILURES + 3)]
    table = RunSummary("d", "x.zarr", many).table()
    assert f"({FIRST_FAILURES} of {FIRST_FAILURES + 3} shown)" in table
    assert f"s/{FIRST_FAILURES - 1} [face]" in table and f"s/{FIRST_FAILURES} [face]" not in table


def test_a_clean_run_names_no_failure_command():
    table = RunSummary("d", "x.zarr", [SampleOutcome("a", "ok")]).table()
    assert "stag store failures" not in table and "computed            1" in table
