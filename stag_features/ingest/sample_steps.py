"""One sample's ingest, in any process: computed whole or split over tasks, then committed, or
its failure recorded in the store (flows/ wires these steps; ``ingest_steps`` plans them).

Whole (short clips, in batches):

    outcome = ingest_sample_with_retries(store, item, config)

Split (long clips: their TV-L1 pairs dominate, ``schemas.pipeline_config.ExecutionConfig``):

    prepared = prepare_split(store, item, config)                      # one task
    parts = [split_pairs(store, item, prepared, i, config)             # one task per chunk of
             for i in range(pair_chunk_count(config))]                 #   execution.pairs_per_task pairs
    outcome = finish_split(store, item, prepared, parts, config)       # one task: ROIs, AUs, graph, write

Both give the features of ``extract_sample``, byte for byte. The chunks are
fixed before the clip is prepared (from ``selection.k``); a chunk past the
clip's last selected frame computes nothing. Failures: a step's SampleError or
bug is recorded in the sample's slot at once (``recorded``) and travels on as
the sample's ``SampleOutcome`` (later steps pass it through); transient I/O
errors are retried (``with_io_retries``); a task that dies is reconciled by the
flow (``record_dead_batch``).
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from schemas.pipeline_config import PipelineConfig
from schemas.sample_features import SampleFeatures
from schemas.sample_record import SampleRecord
from stag_features.errors import SampleError
from stag_features.ingest.plan import SampleOutcome, input_hash, input_hashes, split_costliest
from stag_features.ingest.steps import DEFERRED_HASH, IngestPlan, WorkItem
from stag_features.store.writer import slot_states
from stag_features.store.slots import SlotWriter, record_failure, write_sample

if TYPE_CHECKING:  # the pipeline (OpenCV, dlib) loads in the workers only, not in the flow's process
    from stag_features.extract.sample_pipeline import PairFlows, PreparedClip

# I/O errors that a retry cannot fix: recorded at once (other OSErrors: with_io_retries)
PERMANENT_IO_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
IO_RETRIES = 2  # transient OSErrors of one sample: tries after the first
IO_RETRY_DELAY_S = 2
_BACKENDS = threading.local()
_SPARES: dict[str, Future | None] = {}  # face config JSON -> a backend warm_backend is building or built
_SPARE_LOCK = threading.Lock()
_TAKEN = None  # a spare some thread took
T = TypeVar("T")


def warm_backend(config: PipelineConfig) -> None:
    """Build the landmark backend for ``config.face`` now (in the caller's thread), for the first
    ``cached_backend`` call with that face config in any thread of this process: a Dask worker
    loads its model (~0.5 s) while the flow is still planning, not in its first task."""
    from stag_features.extract.face import make_backend

    key = config.face.model_dump_json()
    with _SPARE_LOCK:
        if key in _SPARES:
            return
        spare = _SPARES[key] = Future()
    try:
        spare.set_result(make_backend(config.face))
    except BaseException as exc:  # noqa: BLE001 - the first task then sees it
        spare.set_exception(exc)


def cached_backend(config: PipelineConfig):
    """The landmark backend for ``config.face``, built once per thread (loading a model takes ~0.5 s),
    or the one ``warm_backend`` built for it (handed to one thread only)."""
    from stag_features.extract.face import make_backend

    key = config.face.model_dump_json()
    cache = getattr(_BACKENDS, "by_config", None)
    if cache is None:
        cache = _BACKENDS.by_config = {}
    if key not in cache:
        with _SPARE_LOCK:
            spare = _SPARES.pop(key, None)
            _SPARES[key] = _TAKEN  # later threads build their own
        cache[key] = spare.result() if isinstance(spare, Future) else make_backend(config.face)
    return cache[key]


def recorded(store: str, item: WorkItem, step: Callable[[], T]) -> T | SampleOutcome:
    """``step()``, or the failure it raised, recorded in the sample's slot and returned as its outcome.

    A SampleError (bad input) is recorded under its stage, a permanent I/O error under "decode", any
    other exception (a bug in a stage) under "unexpected" with its type, so one sample never stops
    the run. OSError and MemoryError pass through: transient, see ``with_io_retries``.
    """
    try:
        return step()
    except SampleError as exc:
        stage, reason = exc.stage, exc.reason
    except PERMANENT_IO_ERRORS as exc:
        stage, reason = "decode", f"{type(exc).__name__}: {exc}"
    except (OSError, MemoryError):
        raise  # transient I/O: the caller may retry
    except Exception as exc:  # noqa: BLE001 - recorded, never swallowed silently
        stage, reason = "unexpected", f"{type(exc).__name__}: {exc}"
    record_failure(store, item.slot, item.sample_id, stage, reason, item.input_hash)
    return SampleOutcome(item.sample_id, "failed", stage, reason)


def commit_features(store: str, item: WorkItem, features: SampleFeatures) -> SampleOutcome:
    """Write a computed sample into its slot (committed last), or record why the store refused it."""
    try:
        write_sample(store, item.slot, features, item.input_hash)
    except SampleError as exc:
        record_failure(store, item.slot, item.sample_id, exc.stage, exc.reason, item.input_hash)
        return SampleOutcome(item.sample_id, "failed", exc.stage, exc.reason)
    return SampleOutcome(item.sample_id, "ok", timings=dict(features.timings))


def ingest_sample(store: str, item: WorkItem, config: PipelineConfig, backend=None) -> SampleOutcome:
    """Compute one sample and commit it, or record why it failed (``recorded``). Raises only
    OSError and MemoryError (transient I/O)."""
    from stag_features.extract.sample_pipeline import extract_sample

    record = SampleRecord.model_validate_json(item.record_json)
    features = recorded(store, item, lambda: extract_sample(record, config, backend=backend or cached_backend(config)))
    if isinstance(features, SampleOutcome):
        return features
    return commit_features(store, item, features)


def with_io_retries(store: str, item: WorkItem, step: Callable[[], T]) -> T | SampleOutcome:
    """``step()``, retrying the OSErrors it lets through (transient I/O) IO_RETRIES times
    IO_RETRY_DELAY_S apart; then, or on MemoryError, the failure is recorded under stage "io"."""
    attempt = 0
    while True:
        try:
            return step()
        except OSError as exc:
            if attempt < IO_RETRIES:
                attempt += 1
                time.sleep(IO_RETRY_DELAY_S)
                continue
            reason = f"{type(exc).__name__}: {exc} (after {IO_RETRIES} retries)"
        except MemoryError as exc:
            reason = f"MemoryError: {exc}"
        record_failure(store, item.slot, item.sample_id, "io", reason, item.input_hash)
        return SampleOutcome(item.sample_id, "failed", "io", reason)


def recorded_with_retries(store: str, item: WorkItem, step: Callable[[], T]) -> T | SampleOutcome:
    """``recorded(step)`` with its transient I/O errors retried (``with_io_retries``)."""
    return with_io_retries(store, item, lambda: recorded(store, item, step))


def with_input_hash(item: WorkItem) -> WorkItem:
    """``item`` with its input hash (``ingest_plan.input_hash``: the record and its frame files'
    bytes, read before anything is decoded) when planning deferred it."""
    if item.input_hash != DEFERRED_HASH:
        return item
    return dataclasses.replace(item, input_hash=input_hash(SampleRecord.model_validate_json(item.record_json)))


def with_input_hashes(items: Sequence[WorkItem]) -> list[WorkItem]:
    """``with_input_hash`` of each item, the deferred ones hashed by one thread per core."""
    deferred = [item for item in items if item.input_hash == DEFERRED_HASH]
    hashes = iter(input_hashes([SampleRecord.model_validate_json(item.record_json) for item in deferred]))
    return [dataclasses.replace(item, input_hash=next(hashes)) if item.input_hash == DEFERRED_HASH else item
            for item in items]


def ingest_sample_with_retries(store: str, item: WorkItem, config: PipelineConfig) -> SampleOutcome:
    """ingest_sample (its input hashed first when planning deferred it), its transient I/O errors
    retried (``with_io_retries``)."""
    item = with_input_hash(item)  # never raises: an unreadable input hashes as such and fails in its stage
    return with_io_retries(store, item, lambda: ingest_sample(store, item, config))


def record_dead_batch(plan: IngestPlan, items: list[WorkItem], exc: BaseException) -> list[SampleOutcome]:
    """Outcomes of a batch whose task died (a killed worker, say): a sample the store holds committed
    with this run's input and config hashes counts as ok; the others are recorded as failed."""
    states = slot_states(plan.store)
    outcomes, writer = [], None
    for item in items:
        state = states.get(item.sample_id)
        # a deferred hash: planning found the slot not settled under this config, so a commit is this run's
        if state is not None and state.committed and state.config_hash == plan.config_hash and (
                item.input_hash in (DEFERRED_HASH, state.input_hash)):
            outcomes.append(SampleOutcome(item.sample_id, "ok"))
            continue
        reason = f"{type(exc).__name__}: {exc} (its task failed)"
        writer = writer or SlotWriter(plan.store)  # opened once, on the batch's first failure
        writer.record_failure(item.slot, item.sample_id, "io", reason, item.input_hash)
        outcomes.append(SampleOutcome(item.sample_id, "failed", "io", reason))
    return outcomes


def pair_chunk_count(config: PipelineConfig) -> int:
    """Pair tasks of a split clip: ceil(K / pairs_per_task); 1 (no split) when pairs_per_task is 0."""
    per_task = config.execution.pairs_per_task
    return math.ceil(config.selection.k / per_task) if per_task else 1


def work_cost(item: WorkItem) -> float:
    """A sample's cost estimate when scheduling: its frames (+1, so that unknown lengths still count)."""
    return item.frames + 1


def clips_to_split(items: Sequence[WorkItem], parallelism: int,
                   config: PipelineConfig) -> tuple[list[WorkItem], list[WorkItem]]:
    """(kept whole, split): the clips a run splits into pair tasks (``split_costliest`` with
    ``execution.split_min_share``), none when a split clip would get a single pair task."""
    if pair_chunk_count(config) <= 1:
        return list(items), []
    return split_costliest(items, parallelism, work_cost, config.execution.split_min_share)


def prepare_split(store: str, item: WorkItem, config: PipelineConfig) -> PreparedClip | SampleOutcome:
    """Decode, landmarks, alignment and motion of the clip (``prepare_sample``), or its recorded failure."""
    from stag_features.extract.sample_pipeline import prepare_sample

    record = SampleRecord.model_validate_json(item.record_json)
    return recorded_with_retries(store, item, lambda: prepare_sample(record, config, backend=cached_backend(config)))


def split_pairs(store: str, item: WorkItem, prepared: PreparedClip | SampleOutcome, chunk: int,
                config: PipelineConfig) -> PairFlows | SampleOutcome:
    """TV-L1 and strain of the clip's ``chunk``-th group of pairs, or the failure of this or an earlier step."""
    from stag_features.extract.sample_pipeline import flow_pairs

    if isinstance(prepared, SampleOutcome):
        return prepared
    per_task = config.execution.pairs_per_task or prepared.n_pairs
    return recorded_with_retries(store, item, lambda: flow_pairs(prepared, config, first=chunk * per_task,
                                                                 count=per_task))


def finish_split(store: str, item: WorkItem, prepared: PreparedClip | SampleOutcome,
                 parts: Sequence[PairFlows | SampleOutcome], config: PipelineConfig) -> SampleOutcome:
    """ROIs, AUs and graph over every pair, then the write (commit last); or the first failure of the clip."""
    from stag_features.extract.sample_pipeline import finish_sample

    failed = [part for part in (prepared, *parts) if isinstance(part, SampleOutcome)]
    if failed:
        return failed[0]
    features = recorded_with_retries(store, item, lambda: finish_sample(prepared, parts, config))
    if isinstance(features, SampleOutcome):
        return features
    return with_io_retries(store, item, lambda: commit_features(store, item, features))
