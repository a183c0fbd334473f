"""Progress bars of ``stag-ingest`` and ``stag-fit`` (rich), and the lines printed above them.

    ingest demo  ━━━━━━━━━━━━━━━━━━━━━  100%  50/50 samples  computed 48 failed 2 skipped 0  0:00:21 0:00:00
    fit seed 1 fold 3/5 s03 epoch 15/15 loss 0.112  ━━━━━━━━━━━━  60%  225/375 epochs  0:00:31 0:00:19

On a terminal the bar redraws in place; written to a file or a pipe, it is printed once, in its
final state, when the run ends (rich's behaviour). Lines (``line``) are printed above the bar.
``IngestProgress`` is the listener of ``flows.ingest.reporting_to``; ``FitProgress`` the listener
of ``stag_model.training_log.TrainingLog``.
"""
from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

FILE_WIDTH = 160  # columns of the bar when the output is not a terminal (rich assumes 80, cutting fields)
BAR_WIDTH = 24
REASON_CHARS = 100  # a per-sample line's reason is cut to this many characters


def console() -> Console:
    """A console on standard output (looked up at each write, so that redirections hold)."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=FILE_WIDTH)


def _progress(*fields: str) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(bar_width=BAR_WIDTH), TaskProgressColumn(),
                    *(TextColumn(f) for f in fields), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console())


class _Bar:
    """A rich progress display (``self.progress``), live while the ``with`` block runs."""

    progress: Progress

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def line(self, text: str) -> None:
        """A line printed above the bar."""
        self.progress.console.print(text, highlight=False, markup=False)


class IngestProgress(_Bar):
    """One bar per ingest: samples done of the run's samples, with counts computed / failed /
    skipped (reused, or an earlier failure that stands), elapsed and remaining time. ``verbose``:
    a line per computed sample too. ``step_seconds`` holds the start-up's time (server, imports,
    cluster: until planning starts) for the summary; ``summary`` the run's, once it has finished."""

    def __init__(self, dataset: str, verbose: bool = False):
        self.dataset, self.verbose = dataset, verbose
        self.progress = _progress("{task.completed}/{task.total} samples", "{task.fields[counts]}")
        self.counts = {"computed": 0, "failed": 0, "skipped": 0}
        self.task = self.progress.add_task(f"ingest {dataset}: starting", total=None, counts="")
        self.step_seconds: dict[str, float] = {}
        self._started = time.perf_counter()
        self.summary = None

    def step(self, name: str) -> None:
        """A step starts: shown on the bar; the time before planning is the run's start-up."""
        if name == "planning" and "start-up" not in self.step_seconds:
            self.step_seconds["start-up"] = time.perf_counter() - self._started
        self.progress.update(self.task, description=f"ingest {self.dataset}: {name}")

    def planned(self, plan, recorded: dict[str, tuple[str, str]]) -> None:
        self.counts["skipped"] = sum(o.status == "skipped" for o in plan.decided)
        self.counts["failed"] = sum(o.status == "failed" for o in plan.decided)
        self.progress.update(self.task, total=len(plan.work) + len(plan.decided), completed=len(plan.decided),
                             counts=self._counts())
        self.progress.start_task(self.task)

    def sample(self, outcome) -> None:
        self.counts["computed" if outcome.status == "ok" else outcome.status] += 1
        self.progress.update(self.task, advance=1, counts=self._counts())
        if self.verbose:
            task = self.progress.tasks[0]
            self.line(f"{int(task.completed)}/{int(task.total or 0)} {outcome.status} {outcome.sample_id} "
                      f"{outcome.reason[:REASON_CHARS]}".rstrip())

    def finished(self, summary) -> None:
        self.progress.update(self.task, description=f"ingest {self.dataset}")
        self.summary = summary

    def _counts(self) -> str:
        return " ".join(f"{name} {value}" for name, value in self.counts.items())


class FitProgress(_Bar):
    """One bar per fit: epochs done of every fold's epochs (folds x seeds x epochs), the fold
    and epoch last finished with its training loss, elapsed and remaining time."""

    def __init__(self, title: str, total_epochs: int):
        self.title = title
        self.progress = _progress("{task.completed}/{task.total} epochs")
        self.task = self.progress.add_task(f"{title}: starting", total=total_epochs)
        self.folds: dict[tuple[int, str], str] = {}  # (seed, fold) -> "fold i/n"

    def fold_started(self, seed: int, fold: str, index: int, total: int) -> None:
        self.folds[(seed, fold)] = f"fold {index}/{total}"

    def epoch(self, record) -> None:
        where = self.folds.get((record.seed, record.fold), "fold")
        figures = " ".join(f"{tag.replace('train/', '')} {value:.3f}" for tag, value in record.scalars.items())
        self.progress.update(self.task, advance=1, description=f"{self.title} seed {record.seed} {where} "
                             f"{record.fold} epoch {record.epoch}/{record.epochs} {figures}")

    def fold_done(self, seed: int, fold: str) -> None:
        self.folds.pop((seed, fold), None)
