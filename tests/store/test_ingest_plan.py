"""Skip decisions and input hashing."""
from __future__ import annotations

from schemas.pipeline_config import PipelineConfig
from schemas.sample_record import FrameSource, SampleRecord
from stag_features.ingest.input_hash import input_hash
from stag_features.ingest.plan import RunSummary, SampleOutcome, hash_decides, needs_compute
from stag_features.ingest.producers import PipelineProducer
from stag_features.store.writer import SlotState


def _state(committed=False, stage="", in_hash="i", config_hash="c") -> SlotState:
    return SlotState(0, committed, in_hash, config_hash, stage, "why" if stage else "", "")


def test_skip_rule():
    assert needs_compute(None, "i", "c", force=False)  # new
    assert not needs_compute(_state(committed=True), "i", "c", force=False)  # done
    assert needs_compute(_state(committed=True), "i", "c", force=True)  # --force
    assert needs_compute(_state(committed=True), "other", "c", force=False)  # input changed
    assert needs_compute(_state(committed=True), "i", "other", force=False)  # config changed
    assert not needs_compute(_state(stage="face"), "i", "c", force=False)  # bad input: the failure stands
    assert needs_compute(_state(stage="unexpected"), "i", "c", force=False)  # a stage's bug: try again
    assert needs_compute(_state(stage="io"), "i", "c", force=False)  # transient I/O: try again
    assert needs_compute(_state(), "i", "c", force=False)  # allocated, never finished (a crash)


def test_the_input_hash_is_read_in_planning_only_where_it_can_change_the_decision():
    states = [None, _state(committed=True), _state(committed=True, config_hash="other"), _state(stage="face"),
              _state(stage="unexpected"), _state(stage="io"), _state()]
    for state in states:
        for force in (False, True):
            decides = hash_decides(state, "c", force)
            # exactly where some input hash skips the sample and another computes it
            assert decides == (needs_compute(state, "i", "c", force) != needs_compute(state, "changed", "c", force))
    assert hash_decides(_state(committed=True), "c", force=False)
    assert not hash_decides(None, "c", force=False)


def test_input_hash_covers_record_and_frame_bytes(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(3):
        (folder / f"img{i}.png").write_bytes(bytes([i]) * 10)
    record = SampleRecord(dataset="d", subject="s", clip="c", source=FrameSource(kind="folder", path=folder))
    producer = PipelineProducer(PipelineConfig())
    first = input_hash(record, producer)
    assert input_hash(record, producer) == first
    assert input_hash(record.model_copy(update={"emotion": "x"}), producer) != first
    (folder / "img1.png").write_bytes(b"changed!!!")
    assert input_hash(record, producer) != first
    missing = record.model_copy(update={"source": FrameSource(kind="folder", path=tmp_path / "nowhere")})
    assert len(input_hash(missing, producer)) == 64  # never raises: the extraction records the problem


def test_summary_counts_and_stage_times():
    summary = RunSummary("d", "s.zarr", [
        SampleOutcome("a", "ok", timings={"tvl1": 2.0, "align": 1.0}),
        SampleOutcome("b", "ok", timings={"tvl1": 1.0}),
        SampleOutcome("c", "skipped"),
        SampleOutcome("d", "failed", "face", "no face"),
    ], bad_rows=1, wall_seconds=3.0)
    assert (summary.count("ok"), summary.count("skipped"), summary.count("failed")) == (2, 1, 1)
    assert summary.stage_seconds() == {"tvl1": 3.0, "align": 1.0}
    assert "d [face] no face" in summary.table() and "stag store failures s.zarr" in summary.table()
    assert "| 2 | 1 | 1 | 0 | 1 |" in summary.markdown()  # computed, reused, failed, failed earlier, bad rows
