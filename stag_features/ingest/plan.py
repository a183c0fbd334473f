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
``RunSummary`` adds them up into the terminal table and the markdown report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence, TypeVar

from stag_features.store.writer import SlotState

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


@dataclass
class RunSummary:
    """Counts and time per stage over one run's outcomes."""

    dataset: str
    store: str
    outcomes: list[SampleOutcome]
    bad_rows: int = 0
    wall_seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def stage_seconds(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for outcome in self.outcomes:
            for stage, seconds in outcome.timings.items():
                totals[stage] = totals.get(stage, 0.0) + seconds
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def failures(self) -> list[SampleOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def table(self) -> str:
        """Plain-text summary for the terminal."""
        lines = [
            f"ingest {self.dataset} -> {self.store} ({self.wall_seconds:.1f} s)",
            f"  ok {self.count('ok'):>6}   skipped {self.count('skipped'):>6}   failed {self.count('failed'):>6}"
            f"   bad sheet rows {self.bad_rows:>4}",
        ]
        stages = self.stage_seconds()
        if stages:
            lines.append("  time per stage (s, summed over samples):")
            lines += [f"    {stage:<10} {seconds:9.2f}" for stage, seconds in stages.items()]
        for outcome in self.failures()[:20]:
            lines.append(f"  FAILED {outcome.sample_id} [{outcome.stage}] {outcome.reason[:120]}")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The same summary as a markdown report (a Prefect artifact)."""
        rows = [
            f"# Ingest of `{self.dataset}`",
            f"Store `{self.store}`, {self.wall_seconds:.1f} s wall time.",
            "",
            "| ok | skipped | failed | bad sheet rows |",
            "|---:|---:|---:|---:|",
            f"| {self.count('ok')} | {self.count('skipped')} | {self.count('failed')} | {self.bad_rows} |",
        ]
        stages = self.stage_seconds()
        if stages:
            rows += ["", "| stage | seconds (summed) |", "|---|---:|"]
            rows += [f"| {stage} | {seconds:.2f} |" for stage, seconds in stages.items()]
        if self.failures():
            rows += ["", "| failed sample | stage | reason |", "|---|---|---|"]
            rows += [f"| {o.sample_id} | {o.stage} | {o.reason[:200].replace('|', '/')} |" for o in self.failures()]
        return "\n".join(rows)
