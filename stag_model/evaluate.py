"""Evaluate per-fold checkpoints on the folds they were trained for (``stag evaluate``).

For every seed and every fold of the protocol, the checkpoint of that fold predicts the
fold's test samples with the normaliser, class order and test-time flip it was trained
with (`stag_model.train.predict`); nothing is trained and no label reaches the model. The
results are `FoldResult`s as `stag_model.train.run_protocol` returns them, so
`stag_model.report.write_run` writes the same predictions, MEGC logs, metrics and report.

Two folder formats:

- ``stag``: a stag-fit run's ``checkpoints/`` folder, ``seed<S>/<fold>.pt`` (`stag_model.checkpoints`);
- ``ststnet-release``: the per-subject weights released by STSTNet's authors
  (`stag_model.released_weights`), one fold per subject, listed under seed 0.

Before a fold is predicted its checkpoint is refused if it is missing, if it is a pickle
that would run code, if its weights do not fit the architecture it names, if its classes,
ROI graph or input units differ from the store's, or if it was trained for other test
subjects or with any of this fold's test subjects in its training set.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from stag_model.checkpoints import Checkpoint, CheckpointError, check_fits, configs_of, read_checkpoint, restore
from stag_model.data import StoreSamples
from stag_model.protocols import Fold
from stag_model.released_weights import RELEASE_SCHEME, RELEASE_SEED, StstnetRelease, ststnet_release_configs
from stag_model.report import checkpoint_name
from stag_model.train import FoldResult, mean_attention, predict

FORMATS = ("stag", "ststnet-release")


@dataclass(frozen=True)
class FoundCheckpoints:
    """The checkpoints of a folder: per seed, a file per fold name."""

    folder: Path
    format: str
    model: str
    seeds: list[int]
    description: str
    stag_files: dict[int, dict[str, Path]]  # format stag: seed -> checkpoint name -> file
    release: StstnetRelease | None  # format ststnet-release
    first: Checkpoint | None  # format stag: the checkpoint the run's configs are read from

    def missing(self, seed: int, folds: list[Fold]) -> list[str]:
        """Names of the folds in ``folds`` without a checkpoint for ``seed``."""
        if self.release is not None:
            return self.release.missing([f.name for f in folds])
        return [f.name for f in folds if checkpoint_name(f.name) not in self.stag_files[seed]]

    def expected_path(self, seed: int, fold: str) -> Path:
        if self.release is not None:
            return self.release.path(fold)
        return self.folder / f"seed{seed}" / f"{checkpoint_name(fold)}.pt"

    def load(self, seed: int, fold: str, scheme: str) -> Checkpoint:
        if self.release is not None:
            return self.release.load(fold, scheme)
        return read_checkpoint(self.stag_files[seed][checkpoint_name(fold)])


def read_checkpoints(folder: Path, fmt: str = "stag", subject_list: Path | None = None,
                     seeds: tuple[int, ...] | None = None) -> FoundCheckpoints:
    """The checkpoints in ``folder`` (format ``stag`` or ``ststnet-release``), of ``seeds`` (default all)."""
    folder = Path(folder)
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown checkpoint format {fmt!r}; choose one of {list(FORMATS)}")
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} not found")
    if fmt == "ststnet-release":
        if seeds and set(seeds) != {RELEASE_SEED}:
            raise CheckpointError(f"the STSTNet release is one training run, listed as seed {RELEASE_SEED}; "
                                  f"--seeds {list(seeds)} does not apply")
        release = StstnetRelease.open(folder, subject_list)
        order = f"order of {release.subject_list.name}" if release.subject_list else "the .pth names"
        return FoundCheckpoints(folder, fmt, "ststnet-release", [RELEASE_SEED],
                                f"STSTNet weights released by its authors ({len(release.subjects)} subjects, {order})",
                                {}, release, None)
    seed_dirs = {int(m.group(1)): p for p in folder.iterdir() if p.is_dir()
                 and (m := re.fullmatch(r"seed(-?\d+)", p.name))}
    if not seed_dirs:
        hint = (" (it holds .pth files: for released weights use --format ststnet-release)"
                if any(folder.glob("*.pth")) else
                " (give the checkpoints/ folder of a stag-fit run)" if (folder / "checkpoints").is_dir() else "")
        raise CheckpointError(f"{folder} holds no seed<S>/ folders of stag-fit checkpoints{hint}")
    chosen = sorted(seed_dirs) if not seeds else list(seeds)
    absent = [s for s in chosen if s not in seed_dirs]
    if absent:
        raise CheckpointError(f"{folder} holds checkpoints of seeds {sorted(seed_dirs)}, not of {absent}")
    files = {s: {p.stem: p for p in sorted(seed_dirs[s].glob("*.pt"))} for s in chosen}
    empty = [s for s in chosen if not files[s]]
    if empty:
        raise CheckpointError(f"{folder}/seed{empty[0]} holds no <fold>.pt checkpoint")
    first = read_checkpoint(next(iter(files[chosen[0]].values())))
    model = str(first.metadata.get("model", "?"))
    return FoundCheckpoints(folder, fmt, model, chosen, f"stag-fit checkpoints of {model} in {folder}", files, None,
                            first)


def run_configs(found: FoundCheckpoints, scheme: str | None = None) -> dict:
    """The configs of the run that made the checkpoints (``scheme`` replaces its class scheme)."""
    if found.release is not None:
        return ststnet_release_configs(scheme or RELEASE_SCHEME)
    return configs_of(found.first, scheme)


def _check_subjects(checkpoint: Checkpoint, fold: Fold, samples: StoreSamples) -> None:
    tested = sorted(set(samples.subjects[fold.test].tolist()))
    trained_for = sorted(checkpoint.metadata.get("test_subjects", []))
    if trained_for != tested:
        raise CheckpointError(f"{checkpoint.path} was trained for a fold testing subjects {trained_for[:6]}, but fold "
                              f"{fold.name} of the store tests {tested[:6]}; evaluate with the protocol (and --folds) "
                              "it was trained under")
    leaked = sorted(set(checkpoint.metadata.get("train_subjects", [])) & set(tested))
    if leaked:
        raise CheckpointError(f"{checkpoint.path} was trained on subjects {leaked[:6]} that fold {fold.name} tests")


def evaluate_folds(found: FoundCheckpoints, samples: StoreSamples, source, folds: list[Fold], device: torch.device,
                   log: Callable[[str], None] = print, scheme: str | None = None) -> dict[int, list[FoldResult]]:
    """Each fold's test samples predicted by its checkpoint, for every seed: {seed: [FoldResult]} in fold order."""
    scheme = scheme or run_configs(found).get("data").scheme
    for seed in found.seeds:
        missing = found.missing(seed, folds)
        if missing:
            example = found.expected_path(seed, missing[0])
            raise CheckpointError(f"{found.folder} has no checkpoint for {len(missing)} of the {len(folds)} folds "
                                  f"(seed {seed}): {missing[:6]}; expected e.g. {example}")
    results: dict[int, list[FoldResult]] = {}
    for seed in found.seeds:
        results[seed] = []
        for i, fold in enumerate(folds):
            started = time.perf_counter()
            checkpoint = found.load(seed, fold.name, scheme)
            configs = (ststnet_release_configs(scheme) if found.release is not None
                       else configs_of(checkpoint, scheme))
            check_fits(checkpoint, configs, samples)
            _check_subjects(checkpoint, fold, samples)
            model, normaliser = restore(checkpoint, configs, samples, device)
            train = configs["train"]
            probabilities = predict(model, source, normaliser, fold.test, train.batch_size, device, train.amp,
                                    train.test_time_flip)
            attention = mean_attention(model, source, normaliser, fold.test, train.batch_size)
            result = FoldResult(fold.name, seed, fold.test, probabilities, {}, checkpoint.metadata,
                                attention=attention, seconds=time.perf_counter() - started)
            results[seed].append(result)
            correct = int((probabilities.argmax(1) == samples.labels[fold.test]).sum())
            log(f"seed {seed} fold {i + 1}/{len(folds)} {fold.name}: test {len(fold.test)} correct "
                f"{correct}/{len(fold.test)} ({checkpoint.path.name})")
    return results


def predicted_pairs(results: dict[int, list[FoldResult]], samples: StoreSamples) -> dict[str, list[tuple[int, int]]]:
    """Per fold, the sorted (true, predicted) class pairs of its test samples (first seed)."""
    first = next(iter(results.values()))
    return {r.fold: sorted(zip(samples.labels[r.test_positions].tolist(), np.argmax(r.probabilities, 1).tolist()))
            for r in first}
