"""Per-epoch training figures: TensorBoard event files in the run folder, and a listener (a progress bar).

    tensorboard --logdir runs/        # every run's folds, one TensorBoard run per (seed, fold)

Layout: ``<run folder>/tensorboard/seed<S>/<fold>/events.out.tfevents.*``. Scalars, at step = epoch (1-based):

    train/loss            mean training loss over the epoch's samples (the model's criterion;
                          mixup-weighted when mixup is on)
    train/accuracy        share of the epoch's training samples whose logits' argmax is their label,
                          on the augmented inputs as the model saw them while it trained
    validation/uf1        where an inner validation split of training subjects is used
    validation/accuracy   (``--validation inner_subjects``): the split after the epoch

The test fold is never logged per epoch (that would invite picking epochs on it): ``TrainingLog``
refuses any tag outside ``train/`` and ``validation/``. Test figures appear once, at the end, in
``metrics.json`` and ``report.md``.

Every training path reports through one ``TrainingLog`` in the process that runs ``stag-fit``: the
fold-by-fold loop directly, the vmapped folds after each epoch, the worker processes through a
queue (``stag_model.fold_processes``).
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

EVENTS_FOLDER = "tensorboard"  # the event files' folder inside the run folder
LOGGED_PREFIXES = ("train/", "validation/")  # the only scalar tags a training log accepts


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch of one (seed, fold): ``scalars`` by tag (see the module docstring)."""

    seed: int
    fold: str
    epoch: int  # 1-based
    epochs: int
    scalars: dict[str, float]


class FitListener(Protocol):
    """What hears training progress (``stag-fit``'s progress bar)."""

    def fold_started(self, seed: int, fold: str, index: int, total: int) -> None: ...

    def epoch(self, record: EpochRecord) -> None: ...

    def fold_done(self, seed: int, fold: str) -> None: ...


def folder_name(fold: str) -> str:
    """A fold's TensorBoard run folder: its name with characters other than letters, digits,
    ``_``, ``.`` and ``-`` replaced by ``_`` (as checkpoint files are named)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", fold)


class TrainingLog:
    """Writes each ``EpochRecord`` as TensorBoard scalars under ``folder`` (None: no files) and
    passes progress on to ``listener``. Thread-safe; ``close`` flushes every file."""

    def __init__(self, folder: Path | None = None, listener: FitListener | None = None):
        self.folder = folder
        self.listener = listener
        self._writers: dict[tuple[int, str], object] = {}
        self._lock = threading.Lock()

    def fold_started(self, seed: int, fold: str, index: int, total: int) -> None:
        if self.listener is not None:
            self.listener.fold_started(seed, fold, index, total)

    def epoch(self, record: EpochRecord) -> None:
        """Log one epoch; a tag outside ``LOGGED_PREFIXES`` is refused (ValueError)."""
        refused = [tag for tag in record.scalars if not tag.startswith(LOGGED_PREFIXES)]
        if refused:
            raise ValueError(f"training log: tags {refused} of fold {record.fold} are not training or validation "
                             "figures; test-fold figures are never logged per epoch")
        if self.folder is not None:
            with self._lock:
                writer = self._writer(record.seed, record.fold)
                for tag, value in record.scalars.items():
                    writer.add_scalar(tag, value, record.epoch)
        if self.listener is not None:
            self.listener.epoch(record)

    def fold_done(self, seed: int, fold: str) -> None:
        """The fold has finished training: its event file is closed."""
        with self._lock:
            writer = self._writers.pop((seed, fold), None)
        if writer is not None:
            writer.close()
        if self.listener is not None:
            self.listener.fold_done(seed, fold)

    def close(self) -> None:
        with self._lock:
            writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            writer.close()

    def _writer(self, seed: int, fold: str):
        key = (seed, fold)
        if key not in self._writers:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when files are asked for

            self._writers[key] = SummaryWriter(str(self.folder / f"seed{seed}" / folder_name(fold)))
        return self._writers[key]

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
