"""What an ingest run does per sample, and what it reports at the end.

A rerun decides per sample from its slot's state and its input hash
(``stag_features.ingest.input_hash``). Planning reads the hash only where it can
change the decision (``hash_decides``); a new sample's task computes it before
it reads its frames. The rule:

    committed, same input hash, same config hash  -> skip
    failed on its input, same input and config    -> skip (the failure stands; --force retries)
    failed in stage "unexpected" (a stage's bug) or "io" (retries exhausted) -> compute again
    anything else (new, changed, interrupted)      -> compute

``SampleOutcome`` is the small result of one sample's task (no arrays);
``RunSummary`` adds them up into the terminal table and the markdown report: samples
computed, reused, failed now, failed earlier (not retried) and bad sheet rows, the first
failures with their reasons, and the command that lists them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from schemas.store_spec import BAD_ROW_PREFIX
from stag_features.store.writer import SlotState, slot_states

T = TypeVar("T")
# failures that say nothing about the input: a rerun tries these samples again
RETRIED_FAILURE_STAGES = frozenset({"unexpected", "io", "integrity"})


def hash_decides(state: SlotState | None, config_hash: str, force: bool) -> bool:
    """Whether ``needs_compute`` depends on the input hash: only for a sample committed, or failed on
    its input, under this config. Any other sample (new, interrupted, retryable, another config, or
    ``force``) is computed whatever its input, so planning need not read its frames."""
    if force or state is None or state.config_hash != config_hash:
        return False
    return state.committed or (bool(state.failure_stage) and state.failure_stage not in RETRIED_FAILURE_STAGES)


def needs_compute(state: SlotState | None, in_hash: str, config_hash: str, force: bool) -> bool:
    """True if the sample must be (re)computed; see the module docstring for the rule."""
    if force or state is None:
        return True
    same = state.input_hash == in_hash and state.config_hash == config_hash
    settled_failure = bool(state.failure_stage) and state.failure_stage not in RETRIED_FAILURE_STAGES
    return not (same and (state.committed or settled_failure))


def guided_batches(items: Sequence[T], parallelism: int, cost: Callable[[T], float], guide: int = 2) -> list[list[T]]:
    """``items`` in batches (one task each) for ``parallelism`` workers, costliest first.

    Guided self-scheduling: each batch takes items, in decreasing cost, until
    it holds 1 / (``guide`` x ``parallelism``) of the cost still unassigned
    (at least one item). Early batches are large, so a run has few tasks (each
    costs ~0.1 s of Prefect and Dask CPU time), and the last ones are single
    items, so that the workers finish together. Ties keep the input order.
    """
    ordered = sorted(items, key=cost, reverse=True)
    left = sum(cost(item) for item in ordered)
    batches: list[list[T]] = []
    start = 0
    while start < len(ordered):
        target, batch, taken = left / (guide * max(1, parallelism)), [], 0.0
        while start < len(ordered) and (not batch or taken + cost(ordered[start]) <= target):
            batch.append(ordered[start])
            taken += cost(ordered[start])
            start += 1
        batches.append(batch)
        left -= taken
    return batches


def split_costliest(items: Sequence[T], parallelism: int, cost: Callable[[T], float],
                    min_share: float) -> tuple[list[T], list[T]]:
    """(kept whole, split): the items whose cost is at least ``min_share`` of one worker's share
    of the total cost (total / ``parallelism``), costliest first, are split into several tasks;
    with one worker nothing is. Both lists keep the input order among equal costs."""
    total = sum(cost(item) for item in items)
    if parallelism <= 1 or total <= 0:
        return list(items), []
    threshold = min_share * total / parallelism
    split = sorted((item for item in items if cost(item) >= threshold), key=cost, reverse=True)
    chosen = {id(item) for item in split}
    return [item for item in items if id(item) not in chosen], split


@dataclass(frozen=True)
class SampleOutcome:
    """The result of one sample's task: small enough for Prefect to persist."""

    sample_id: str
    status: str  # "ok", "skipped" or "failed"
    stage: str = ""
    reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)


FIRST_FAILURES = 5  # failures (and bad sheet rows) the terminal summary lists; `stag store failures` lists all
REASON_CHARS = 120  # a listed failure's reason is cut to this many characters
ANNOTATION_STAGE = "annotation"  # the failure stage of a sheet row that is not a valid sample


def recorded_failures(store: str | Path) -> dict[str, tuple[str, str]]:
    """Slot id -> (stage, reason) of every failure the store records for a sample not committed
    (a sample that failed, or a bad sheet row ``sheet:<file>#<row>``); {} for a store not there."""
    if not (Path(store) / "zarr.json").is_file():
        return {}
    return {sid: (s.failure_stage, s.failure_reason) for sid, s in slot_states(store).items()
            if s.failure_stage and not s.committed}


@dataclass
class RunSummary:
    """What one run did, counted five ways, and where its time went.

    computed        samples whose features this run extracted and committed (outcome "ok")
    reused          samples committed by an earlier run, input and config unchanged (outcome
                    "skipped", no failure recorded)
    failed          samples this run tried and could not compute (outcome "failed", not a sheet row)
    failed earlier  samples whose earlier failure stands (outcome "skipped" with a failure
                    recorded in ``recorded``): their input is unchanged, so they are not retried
    bad sheet rows  annotation rows that are not a valid sample (``bad_rows``)

    ``recorded`` is ``recorded_failures(store)`` read after planning; ``phase_seconds`` the wall
    time of the run's steps (start-up, planning, computing); ``log_file`` where Prefect's records of
    the run went.
    """

    dataset: str
    store: str
    outcomes: list[SampleOutcome]
    bad_rows: int = 0
    wall_seconds: float = 0.0
    recorded: dict[str, tuple[str, str]] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    log_file: str = ""

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        """The five counts of the class docstring, by name."""
        skipped = [o for o in self.outcomes if o.status == "skipped"]
        return {
            "computed": self.count("ok"),
            "reused": sum(o.sample_id not in self.recorded for o in skipped),
            "failed": len(self.failures()),
            "failed earlier": sum(o.sample_id in self.recorded for o in skipped),
            "bad sheet rows": self.bad_rows,
        }

    def stage_seconds(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for outcome in self.outcomes:
            for stage, seconds in outcome.timings.items():
                totals[stage] = totals.get(stage, 0.0) + seconds
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def failures(self) -> list[SampleOutcome]:
        """Samples this run tried and could not compute."""
        return [o for o in self.outcomes if o.status == "failed" and o.stage != ANNOTATION_STAGE]

    def earlier_failures(self) -> list[SampleOutcome]:
        """Samples not retried because their recorded failure stands, with its stage and reason."""
        return [SampleOutcome(o.sample_id, "failed", *self.recorded[o.sample_id]) for o in self.outcomes
                if o.status == "skipped" and o.sample_id in self.recorded]

    def bad_sheet_rows(self) -> list[SampleOutcome]:
        """Bad annotation rows with their reasons: rows that named a sample, then rows that did not."""
        named = [o for o in self.outcomes if o.status == "failed" and o.stage == ANNOTATION_STAGE]
        listed = {o.sample_id for o in named}
        rows = [SampleOutcome(sid, "failed", stage, reason) for sid, (stage, reason) in sorted(self.recorded.items())
                if stage == ANNOTATION_STAGE and sid not in listed and sid.startswith(BAD_ROW_PREFIX)]
        return named + rows

    def table(self) -> str:
        """Plain-text summary for the terminal."""
        counts = self.counts()
        explain = {
            "computed": "features extracted and committed in this run",
            "reused": "committed earlier, input and config unchanged",
            "failed": "tried in this run and not computed",
            "failed earlier": "recorded failure stands, input unchanged (--force retries)",
            "bad sheet rows": "annotation rows that are not a valid sample",
        }
        lines = [f"ingest {self.dataset} -> {self.store} ({self.wall_seconds:.1f} s)"]
        lines += [f"  {name:<15}{value:>6}   {explain[name]}" for name, value in counts.items()]
        if self.phase_seconds:
            lines.append("  time per step: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.phase_seconds.items()))
        stages = self.stage_seconds()
        if stages:
            lines.append("  time per stage (s, summed over samples):")
            lines += [f"    {stage:<10} {seconds:9.2f}" for stage, seconds in stages.items()]
        for title, items in (("failures", self.failures() + self.earlier_failures()),
                             ("bad sheet rows", self.bad_sheet_rows())):
            if items:
                lines.append(f"  {title} ({min(len(items), FIRST_FAILURES)} of {len(items)} shown):")
                lines += [f"    {o.sample_id} [{o.stage}] {o.reason[:REASON_CHARS]}" for o in items[:FIRST_FAILURES]]
        if self.failures() or self.earlier_failures() or self.bad_rows:
            lines.append(f"  every failure and bad row: stag store failures {self.store}")
        if self.log_file:
            lines.append(f"  Prefect's log of this run: {self.log_file}")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The same summary as a markdown report (a Prefect artifact)."""
        counts = self.counts()
        rows = [
            f"# Ingest of `{self.dataset}`",
            f"Store `{self.store}`, {self.wall_seconds:.1f} s wall time.",
            "",
            "| " + " | ".join(counts) + " |",
            "|" + "---:|" * len(counts),
            "| " + " | ".join(str(v) for v in counts.values()) + " |",
        ]
        if self.phase_seconds:
            rows += ["", "| step | seconds |", "|---|---:|"]
            rows += [f"| {step} | {seconds:.1f} |" for step, seconds in self.phase_seconds.items()]
        stages = self.stage_seconds()
        if stages:
            rows += ["", "| stage | seconds (summed) |", "|---|---:|"]
            rows += [f"| {stage} | {seconds:.2f} |" for stage, seconds in stages.items()]
        listed = self.failures() + self.earlier_failures() + self.bad_sheet_rows()
        if listed:
            rows += ["", "| failed sample or bad row | stage | reason |", "|---|---|---|"]
            rows += [f"| {o.sample_id} | {o.stage} | {o.reason[:200].replace('|', '/')} |" for o in listed]
            rows += ["", f"Every failure: `stag store failures {self.store}`."]
        return "\n".join(rows)
