"""The steps of ingesting one catalog dataset, as plain functions (flows/ wires them).

    entry, producer = resolve_producer(catalog, dataset)          # the entry and what makes its samples
    plan = prepare_ingest(entry, producer, force)                 # adapter, store, slots, skip decisions
    outcome = ingest_sample(plan.store, item, producer)           # one per sample, in any process
    summary = RunSummary(..., plan.decided + outcomes)            # (ingest.sample_steps)

Every dataset goes this one way, whatever its producer (``stag_features.ingest.producers``):
frames through the pipeline, or precomputed flow images. ``prepare_ingest`` records every
bad annotation row in the store at once (a slot named ``sheet:<file>#<row>``), so that
nothing is dropped silently. Work items and outcomes are small (ids, hashes, paths,
timings), never arrays: they travel between Prefect tasks, Dask workers and result storage.
``ingest_in_process`` runs the same steps one sample after another in this process,
without an orchestrator (for scripts and benchmarks).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from schemas.catalog import DatasetEntry, load_catalog
from schemas.pipeline_config import PipelineConfig
from schemas.sample_record import SampleRecord
from schemas.store_spec import BAD_ROW_PREFIX
from stag_features.adapters import AdapterResult, load_dataset
from stag_features.ingest.input_hash import input_hashes
from stag_features.ingest.plan import RunSummary, SampleOutcome, hash_decides, needs_compute
from stag_features.ingest.producers import Producer, producer_for
from stag_features.ingest.store_state import current, damaged_samples, decision_states
from stag_features.store.identity import adopted, check_store, recorded_attrs, with_recorded_hash
from stag_features.store.slots import SlotWriter
from stag_features.store.writer import allocate_slots, ensure_store

DEFERRED_HASH = ""  # a WorkItem's input hash that planning did not compute (it could not change the decision)


@dataclass(frozen=True)
class WorkItem:
    """One sample to compute: where it goes and what it is (the record as JSON)."""

    sample_id: str
    slot: int
    record_json: str
    input_hash: str  # DEFERRED_HASH: the task computes it (``sample_steps.with_input_hash``) before reading frames
    cost: float = 1.0  # the producer's estimate of its work, for scheduling (a clip's analysed frames + 1)


@dataclass
class IngestPlan:
    """What a run will do: the store, the samples to compute and those skipped."""

    store: str
    config_hash: str
    store_state: str  # created / opened / rebuilt
    work: list[WorkItem] = field(default_factory=list)
    decided: list[SampleOutcome] = field(default_factory=list)  # skipped, or failed in the sheet: nothing to compute
    bad_rows: int = 0
    damaged: list[str] = field(default_factory=list)  # committed samples found damaged: recomputed in this run


def entry_pipeline_config(entry: DatasetEntry, config_path: str | Path | None = None) -> PipelineConfig:
    """The run's pipeline config: a YAML file if given, else the entry's ``options.pipeline``
    overrides (the demo's small, fast settings), else every default."""
    if config_path:
        return PipelineConfig.from_yaml(config_path)
    overrides = entry.options.get("pipeline")
    if overrides is None:
        return PipelineConfig()
    if not isinstance(overrides, dict):
        raise ValueError(f"dataset {entry.name!r}: options.pipeline must be a mapping of config sections, "
                         f"got {type(overrides).__name__}")
    return PipelineConfig.model_validate(overrides)


def resolve_dataset(catalog: str | Path, dataset: str,
                    config_path: str | Path | None = None) -> tuple[DatasetEntry, PipelineConfig]:
    """The catalog entry of ``dataset`` and the run's pipeline config."""
    entry = load_catalog(catalog).get(dataset)
    return entry, entry_pipeline_config(entry, config_path)


def resolve_producer(catalog: str | Path, dataset: str,
                     config_path: str | Path | None = None) -> tuple[DatasetEntry, Producer]:
    """The catalog entry of ``dataset`` and the producer of its samples under the run's config."""
    entry, config = resolve_dataset(catalog, dataset, config_path)
    return entry, producer_for(entry, config)


def stale_reason(entry: DatasetEntry, producer: Producer) -> str | None:
    """Why ``entry``'s store needs an ingest (``ingest_catalog``), or None if it is up to date:
    its store is missing, was built with another config, or lacks clips the sheet lists."""
    store = Path(entry.store)
    if not (store / "zarr.json").is_file():
        return "store missing"
    identity = producer.identity(entry)
    attrs = recorded_attrs(store, producer.config.store.lock_timeout_s)
    if (attrs or {}).get("config_hash") != adopted(identity, attrs).config_hash:  # the same computation keeps its hash
        return "built with another config"
    records = load_dataset(entry).records
    states = decision_states(entry, producer, records, write=False)
    if states is None:
        return "written by an earlier version (to migrate)"
    if damaged := damaged_samples(states):
        return f"{len(damaged)} committed samples damaged (to recompute)"
    done = {sid for sid, s in states.items() if s.committed or s.failure_stage}
    missing = [r.sample_id for r in records if r.sample_id not in done]
    return f"{len(missing)} clips of the sheet not in the store" if missing else None


def bad_row_id(row) -> str:
    """Slot id of an annotation row that did not become a sample."""
    return f"{BAD_ROW_PREFIX}{Path(row.file).name}#{row.row}"


@dataclass(frozen=True)
class SheetView:
    """A run's records and its annotation problems: ``rejected`` are records whose sheet row is bad
    (sample id -> reason), ``sheet_only`` bad rows that produced no record (slot id -> reason)."""

    records: list[SampleRecord]
    rejected: dict[str, str]
    sheet_only: dict[str, str]

    @property
    def bad_rows(self) -> int:
        return len(self.sheet_only) + len(self.rejected)

    def annotation_failures(self) -> dict[str, str]:
        """Slot id -> reason of every failure recorded in stage ``annotation`` at the start of a run."""
        return {**self.sheet_only, **self.rejected}


def sheet_view(result: AdapterResult, only: set[str] | None = None) -> SheetView:
    """The records of ``result`` a run covers (``only``: some sample ids) and its bad rows."""
    records = [r for r in result.records if only is None or r.sample_id in only]
    # a bad row that still produced a record is that sample's failure; the others get a sheet slot
    row_problems = {row.row: row.reason for row in result.bad_rows if row.row is not None}
    rejected = {r.sample_id: row_problems[r.sheet_row] for r in records if r.sheet_row in row_problems}
    claimed = {r.sheet_row for r in result.records if r.sheet_row in row_problems}
    sheet_only = {} if only is not None else {
        bad_row_id(row): row.reason for row in result.bad_rows if row.row is None or row.row not in claimed}
    return SheetView(records, rejected, sheet_only)


def _check_local(entry: DatasetEntry) -> None:
    if entry.store_is_url:
        raise ValueError(f"dataset {entry.name!r}: store {entry.store} is a URL; this version writes local stores "
                         "only (its lock file needs a local file system); write locally and copy the store")


def prepare_ingest(entry: DatasetEntry, producer: Producer, force: bool = False,
                   only: set[str] | None = None, result: AdapterResult | None = None) -> IngestPlan:
    """Read the dataset, open (or create) its store, allocate slots and decide per sample.

    ``only`` restricts the run to some sample ids (e.g. a subset ingest);
    ``result`` passes records already read (tests).
    """
    _check_local(entry)
    sheet = sheet_view(result or load_dataset(entry), only)
    identity = with_recorded_hash(entry.store, producer.identity(entry))
    state = ensure_store(entry.store, identity, rebuild=force)
    slots = allocate_slots(entry.store, [r.sample_id for r in sheet.records] + sorted(sheet.sheet_only),
                           timeout=producer.config.store.lock_timeout_s)
    if failures := sheet.annotation_failures():
        writer = SlotWriter(entry.store)  # one opening of the store's arrays for all of them
        for sid, reason in failures.items():
            writer.record_failure(slots[sid], sid, "annotation", reason, "")
    states = decision_states(entry, producer, sheet.records, write=True)
    plan = IngestPlan(store=entry.store, config_hash=identity.config_hash, store_state=state,
                      bad_rows=sheet.bad_rows, damaged=damaged_samples(states))
    # the input hash is read here only for samples settled under this config (where it decides, and under
    # --force too, so that a dead task's deferred items never pass a commit of an earlier run as this run's);
    # the other samples' tasks hash their inputs (DEFERRED_HASH): a first ingest does not read every frame
    # file once more before any work starts
    decides = [r for r in sheet.records if r.sample_id not in sheet.rejected
               and hash_decides(states.get(r.sample_id), identity.config_hash, force=False)]
    hashes = dict(zip((r.sample_id for r in decides), input_hashes(decides, producer)))
    for record in sheet.records:
        sid = record.sample_id
        if sid in sheet.rejected:
            plan.decided.append(SampleOutcome(sid, "failed", "annotation", sheet.rejected[sid]))
            continue
        in_hash = hashes.get(sid, DEFERRED_HASH)
        if sid not in hashes or needs_compute(states.get(sid), in_hash, identity.config_hash, force):
            plan.work.append(WorkItem(sid, slots[sid], record.model_dump_json(), in_hash, producer.cost(record)))
        else:
            plan.decided.append(SampleOutcome(sid, "skipped"))
    return plan


def settled_plan(entry: DatasetEntry, producer: Producer) -> IngestPlan | None:
    """Read-only: the plan of a run (without ``--force``) that would compute nothing and change
    nothing, or None when ``prepare_ingest`` would have something to do (a missing store, a new,
    changed, retryable or interrupted sample, a bad sheet row not yet recorded as such).

    Raises what ``prepare_ingest`` raises before it writes: StoreMismatchError for a store
    built with another config (the same message), ValueError for a store URL. Cheap checks
    come first; input hashes (reading every frame file) are computed last and only until one
    differs. Writes nothing, not even the failure time of bad rows (``prepare_ingest`` rewrites
    those with the same stage and reason).
    """
    _check_local(entry)
    if not (Path(entry.store) / "zarr.json").is_file():
        return None
    sheet = sheet_view(load_dataset(entry))  # in prepare_ingest's order, so that errors come in the same order
    if not current(recorded_attrs(entry.store, producer.config.store.lock_timeout_s)):
        return None  # written by an earlier version: the flow migrates it
    identity = check_store(entry.store, producer.identity(entry))
    if identity is None:  # removed since: a flow run creates it
        return None
    states = decision_states(entry, producer, sheet.records, write=False)
    if states is None or damaged_samples(states):
        return None
    for sid, reason in sheet.annotation_failures().items():
        state = states.get(sid)
        if state is None or (state.committed, state.failure_stage, state.failure_reason, state.input_hash,
                             state.config_hash) != (False, "annotation", reason, "", identity.config_hash):
            return None
    if len({r.sample_id for r in sheet.records}) != len(sheet.records):
        return None  # prepare_ingest refuses repeated ids: let it say so
    pending = [r for r in sheet.records if r.sample_id not in sheet.rejected]
    # first without reading frames: would each sample be skipped if its input were unchanged?
    for record in pending:
        state = states.get(record.sample_id)
        if state is None or needs_compute(state, state.input_hash, identity.config_hash, force=False):
            return None
    for record, in_hash in zip(pending, input_hashes(pending, producer)):
        if needs_compute(states[record.sample_id], in_hash, identity.config_hash, force=False):
            return None
    decided = [SampleOutcome(r.sample_id, "failed", "annotation", sheet.rejected[r.sample_id])
               if r.sample_id in sheet.rejected else SampleOutcome(r.sample_id, "skipped") for r in sheet.records]
    return IngestPlan(store=entry.store, config_hash=identity.config_hash, store_state="opened",
                      decided=decided, bad_rows=sheet.bad_rows)


def ingest_in_process(entry: DatasetEntry, producer: Producer, force: bool = False) -> RunSummary:
    """Every step of an ingest, one sample after another in this process (no orchestrator):
    ``prepare_ingest``, then ``ingest_batch`` over the work items (each alone, or clips sharing TV-L1
    calls with torch on a GPU)."""
    from stag_features.ingest.sample_steps import ingest_batch

    started = time.perf_counter()
    plan = prepare_ingest(entry, producer, force)
    outcomes = ingest_batch(plan.store, plan.work, producer)
    return RunSummary(entry.name, plan.store, plan.decided + outcomes, plan.bad_rows, time.perf_counter() - started)
