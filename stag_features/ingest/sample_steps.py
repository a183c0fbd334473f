"""One sample's ingest, in any process: computed whole or split over tasks, then committed, or
its failure recorded in the store (flows/ wires these steps; ``ingest_steps`` plans them).

Whole (short clips, in batches):

    outcome = ingest_sample_with_retries(store, item, producer)

Split (long clips of a ``splittable`` producer, the pipeline: their TV-L1 pairs dominate,
``schemas.pipeline_config.ExecutionConfig``):

    prepared = prepare_split(store, item, producer)                    # one task
    parts = [split_pairs(store, item, prepared, i, producer)           # one task per chunk of
             for i in range(pair_chunk_count(producer))]               #   execution.pairs_per_task pairs
    outcome = finish_split(store, item, prepared, parts, producer)     # one task: ROIs, AUs, graph, write

Batched (a batch task's clips, TV-L1 with the torch backend on a CUDA GPU):

    outcomes = ingest_batch(store, items, producer)   # prepare clips, one TV-L1 call, finish each

Whole and split give the features of ``extract_sample``, byte for byte; batched
too on the CPU, to float noise on a GPU (``ingest_batch``). The chunks are
fixed before the clip is prepared (from ``selection.k``); a chunk past the
clip's last selected frame computes nothing. Failures: a step's SampleError or
bug is recorded in the sample's slot at once (``recorded``) and travels on as
the sample's ``SampleOutcome`` (later steps pass it through); transient I/O
errors are retried (``with_io_retries``); a task that dies is reconciled by the
flow (``record_dead_batch``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from schemas.sample_features import SampleFeatures
from schemas.sample_record import SampleRecord
from stag_features.errors import SampleError
from stag_features.ingest.input_hash import input_hash, input_hashes
from stag_features.ingest.plan import SampleOutcome, split_costliest
from stag_features.ingest.producers import PipelineProducer, Producer, cached_backend
from stag_features.ingest.steps import DEFERRED_HASH, IngestPlan, WorkItem
from stag_features.store.slots import SlotWriter, record_failure, write_sample
from stag_features.store.writer import slot_states

if TYPE_CHECKING:  # the pipeline (OpenCV, dlib) loads in the workers only, not in the flow's process
    from stag_features.extract.sample_pipeline import PairFlows, PreparedClip

# I/O errors that a retry cannot fix: recorded at once (other OSErrors: with_io_retries)
PERMANENT_IO_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
IO_RETRIES = 2  # transient OSErrors of one sample: tries after the first
IO_RETRY_DELAY_S = 2
# TV-L1 pairs of several clips in one call of the torch backend on a GPU (``ingest_batch``): the largest
# batch the GPU check measures (benchmarks/gpu_tvl1.py); device memory grows with it (not yet measured on a GPU)
DEVICE_PAIRS_PER_CALL = 256
T = TypeVar("T")
log = logging.getLogger(__name__)


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


def ingest_sample(store: str, item: WorkItem, producer: Producer) -> SampleOutcome:
    """Compute one sample with its producer and commit it, or record why it failed (``recorded``).
    Raises only OSError and MemoryError (transient I/O)."""
    record = SampleRecord.model_validate_json(item.record_json)
    features = recorded(store, item, lambda: producer.features(record))
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


def with_input_hash(item: WorkItem, producer: Producer) -> WorkItem:
    """``item`` with its input hash (``ingest.input_hash``: the record and its input files'
    bytes, read before anything is decoded) when planning deferred it."""
    if item.input_hash != DEFERRED_HASH:
        return item
    record = SampleRecord.model_validate_json(item.record_json)
    return dataclasses.replace(item, input_hash=input_hash(record, producer))


def with_input_hashes(items: Sequence[WorkItem], producer: Producer) -> list[WorkItem]:
    """``with_input_hash`` of each item, the deferred ones hashed by one thread per core."""
    deferred = [item for item in items if item.input_hash == DEFERRED_HASH]
    hashes = iter(input_hashes([SampleRecord.model_validate_json(item.record_json) for item in deferred], producer))
    return [dataclasses.replace(item, input_hash=next(hashes)) if item.input_hash == DEFERRED_HASH else item
            for item in items]


def ingest_sample_with_retries(store: str, item: WorkItem, producer: Producer) -> SampleOutcome:
    """ingest_sample (its input hashed first when planning deferred it), its transient I/O errors
    retried (``with_io_retries``)."""
    item = with_input_hash(item, producer)  # never raises: an unreadable input hashes as such and fails in its stage
    return with_io_retries(store, item, lambda: ingest_sample(store, item, producer))


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


def pair_chunk_count(producer: Producer) -> int:
    """Pair tasks of a split clip: ceil(K / pairs_per_task); 1 (no split) when pairs_per_task is 0
    or the producer's samples cannot be split."""
    per_task = producer.config.execution.pairs_per_task
    return math.ceil(producer.config.selection.k / per_task) if per_task and producer.splittable else 1


def work_cost(item: WorkItem) -> float:
    """A sample's cost estimate when scheduling (its producer's, recorded in the item)."""
    return item.cost


def clips_to_split(items: Sequence[WorkItem], parallelism: int,
                   producer: Producer) -> tuple[list[WorkItem], list[WorkItem]]:
    """(kept whole, split): the clips a run splits into pair tasks (``split_costliest`` with
    ``execution.split_min_share``), none when a split clip would get a single pair task."""
    if pair_chunk_count(producer) <= 1:
        return list(items), []
    return split_costliest(items, parallelism, work_cost, producer.config.execution.split_min_share)


def prepare_split(store: str, item: WorkItem, producer: PipelineProducer) -> PreparedClip | SampleOutcome:
    """Decode, landmarks, alignment and motion of the clip (``prepare_sample``), or its recorded failure."""
    from stag_features.extract.sample_pipeline import prepare_sample

    record, config = SampleRecord.model_validate_json(item.record_json), producer.config
    return recorded_with_retries(store, item, lambda: prepare_sample(record, config, backend=cached_backend(config)))


def split_pairs(store: str, item: WorkItem, prepared: PreparedClip | SampleOutcome, chunk: int,
                producer: PipelineProducer) -> PairFlows | SampleOutcome:
    """TV-L1 and strain of the clip's ``chunk``-th group of pairs, or the failure of this or an earlier step."""
    from stag_features.extract.sample_pipeline import flow_pairs

    if isinstance(prepared, SampleOutcome):
        return prepared
    per_task = producer.config.execution.pairs_per_task or prepared.n_pairs
    return recorded_with_retries(store, item, lambda: flow_pairs(prepared, producer.config, first=chunk * per_task,
                                                                 count=per_task))


def finish_split(store: str, item: WorkItem, prepared: PreparedClip | SampleOutcome,
                 parts: Sequence[PairFlows | SampleOutcome], producer: PipelineProducer) -> SampleOutcome:
    """ROIs, AUs and graph over every pair, then the write (commit last); or the first failure of the clip."""
    from stag_features.extract.sample_pipeline import finish_sample

    failed = [part for part in (prepared, *parts) if isinstance(part, SampleOutcome)]
    if failed:
        return failed[0]
    features = recorded_with_retries(store, item, lambda: finish_sample(prepared, parts, producer.config))
    if isinstance(features, SampleOutcome):
        return features
    return with_io_retries(store, item, lambda: commit_features(store, item, features))


def batches_pairs_on_device(producer: Producer) -> bool:
    """Whether ``ingest_batch`` sends the TV-L1 pairs of several clips to one call: a pipeline producer
    whose TV-L1 is the torch backend on a CUDA device. Not on the CPU, where a bigger call is no faster
    per pair (BENCHMARKS.md section 9), nor for OpenCV, which solves one pair at a time."""
    tvl1 = producer.config.tvl1
    if not producer.splittable or tvl1.backend != "torch":
        return False
    from stag_features.extract.tvl1_torch import resolve_device

    return resolve_device(tvl1.device).type == "cuda"


def ingest_batch(store: str, items: Sequence[WorkItem], producer: Producer,
                 pairs_per_call: int | None = None) -> list[SampleOutcome]:
    """The samples of one batch, an outcome each in order; one sample's failure never stops the others.

    Each sample alone (``ingest_sample_with_retries``), unless ``batches_pairs_on_device`` or
    ``pairs_per_call`` is given: then clips are prepared in turn (decode, face, align, motion, on the
    CPU: ``prepare_split``) until their pairs reach ``pairs_per_call`` (default ``DEVICE_PAIRS_PER_CALL``),
    their onset -> selected-frame pairs are solved in one call (``flow.tvl1_flow_pairs``), and each
    clip is finished and committed (``finish_split``). A pair's flow does not depend on its batch:
    the same bytes on the CPU, float noise on CUDA (its matrix products may sum in another order for
    another batch size). If the shared call fails, each clip's pairs are computed alone, so that a
    failure is recorded against its own sample. A clip's ``tvl1`` time is its share of the call (by pairs).
    """
    if pairs_per_call is None:
        if not batches_pairs_on_device(producer):
            return [ingest_sample_with_retries(store, item, producer) for item in items]
        pairs_per_call = DEVICE_PAIRS_PER_CALL
    outcomes: dict[int, SampleOutcome] = {}
    group: list[tuple[int, WorkItem, PreparedClip]] = []
    for index, item in enumerate(items):
        item = with_input_hash(item, producer)
        prepared = prepare_split(store, item, producer)
        if isinstance(prepared, SampleOutcome):
            outcomes[index] = prepared
            continue
        group.append((index, item, prepared))
        if sum(clip.n_pairs for _, _, clip in group) >= pairs_per_call:
            outcomes.update(_finish_group(store, group, producer))
            group = []
    outcomes.update(_finish_group(store, group, producer))
    return [outcomes[index] for index in range(len(items))]


def _finish_group(store: str, group: Sequence[tuple[int, WorkItem, PreparedClip]],
                  producer: PipelineProducer) -> dict[int, SampleOutcome]:
    """TV-L1 of every pair of the group's prepared clips in one call, then each clip finished and written."""
    from stag_features.extract.flow import configure_opencv_threads, optical_strain, tvl1_flow_pairs
    from stag_features.extract.sample_pipeline import PairFlows, flow_pairs

    config = producer.config
    counts = [clip.n_pairs for _, _, clip in group]
    flows, seconds_per_pair = None, 0.0
    if sum(counts):
        configure_opencv_threads(config.tvl1)
        started = time.perf_counter()
        try:
            flows = tvl1_flow_pairs([clip.onset_crop for _, _, clip in group for _ in range(clip.n_pairs)],
                                    [crop for _, _, clip in group for crop in clip.selected_crops], config.tvl1)
        except Exception as exc:  # noqa: BLE001 - each clip is then computed alone, its failure recorded as its own
            log.warning("TV-L1 of %d clips in one call failed (%s: %s); computing them clip by clip",
                        len(group), type(exc).__name__, exc)
        seconds_per_pair = (time.perf_counter() - started) / sum(counts)
    outcomes, first = {}, 0
    for (index, item, clip), count in zip(group, counts):
        if flows is None or not count:
            pairs = recorded_with_retries(store, item, lambda: flow_pairs(clip, config))  # noqa: B023 - called now
        else:
            started = time.perf_counter()
            flow = flows[first:first + count]
            strain = optical_strain(flow)
            pairs = PairFlows(clip.sample_id, 0, flow, strain, {"tvl1": seconds_per_pair * count,
                                                               "strain": time.perf_counter() - started})
        first += count
        outcomes[index] = finish_split(store, item, clip, [pairs], producer)
    return outcomes
