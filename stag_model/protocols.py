"""Evaluation protocols: which samples train and which test, fold by fold.

- ``loso``: leave one subject out (MEGC 2019), one fold per subject.
- ``groupkfold``: k folds by subject (no subject on both sides).
- ``stratified``: StratifiedKFold over clips. A subject's clips land on both
  sides, so results are SUBJECT-DEPENDENT; every report says so.
- ``lodo``: leave one dataset out: several stores, or one store whose samples record their source
  dataset (the MEGC 2019 composite: casme2, samm, smic).

Model selection never sees the test fold: training runs a fixed number of
epochs, or keeps the epoch that scores best on an inner validation split of
the training *subjects* (`inner_validation_split`). Everything estimated from
data (AU co-occurrence prior, class weights, normalisation statistics) comes
from the training positions only; the trainer reaches labels only through
`GuardedLabels`, which refuses test positions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, StratifiedKFold

Protocol = Literal["loso", "groupkfold", "stratified", "lodo"]
SUBJECT_INDEPENDENT: dict[str, bool] = {"loso": True, "groupkfold": True, "stratified": False, "lodo": True}


@dataclass(frozen=True)
class Fold:
    name: str  # the held-out subject or dataset, or "fold<i>"
    train: np.ndarray  # sample positions
    test: np.ndarray
    validation: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))


class LeakageError(RuntimeError):
    """Code tried to read a label it must not see."""


class GuardedLabels:
    """Labels readable only at allowed positions (the training fold's)."""

    def __init__(self, labels: np.ndarray, allowed: np.ndarray, fold: str):
        self._labels, self._allowed, self._fold = np.asarray(labels), np.zeros(len(labels), bool), fold
        self._allowed[np.asarray(allowed, dtype=np.int64)] = True

    def __getitem__(self, positions: np.ndarray) -> np.ndarray:
        positions = np.atleast_1d(np.asarray(positions, dtype=np.int64))
        if not self._allowed[positions].all():
            bad = positions[~self._allowed[positions]][:5].tolist()
            raise LeakageError(f"fold {self._fold}: label of position(s) {bad} requested, outside the training fold")
        return self._labels[positions]


def make_folds(protocol: Protocol, subjects: np.ndarray, labels: np.ndarray, datasets: np.ndarray,
               n_splits: int = 5, seed: int = 0) -> list[Fold]:
    """Folds over sample positions 0..N-1. ``labels`` is read only by the
    stratified protocol (to balance classes across folds, never for training)."""
    n = len(subjects)
    positions = np.arange(n)
    if protocol == "loso":
        names = np.unique(subjects)
        if len(names) < 2:
            raise ValueError(f"LOSO needs at least two subjects, the samples have {len(names)}")
        return [Fold(str(s), positions[subjects != s], positions[subjects == s]) for s in names]
    if protocol == "lodo":
        names = np.unique(datasets)
        if len(names) < 2:
            raise ValueError(f"leave-one-dataset-out needs several datasets (stores, or a store whose samples "
                             f"record their source dataset), got {list(names)}")
        return [Fold(str(d), positions[datasets != d], positions[datasets == d]) for d in names]
    if protocol == "groupkfold":
        k = min(n_splits, len(np.unique(subjects)))
        if k < 2:
            raise ValueError("GroupKFold needs at least two subjects")
        splits = GroupKFold(n_splits=k).split(positions, groups=subjects)
    elif protocol == "stratified":
        counts = np.bincount(labels) if len(labels) else np.zeros(0, np.int64)
        k = min(n_splits, int(counts[counts > 0].min())) if counts.any() else 0
        if k < 2:
            raise ValueError(f"StratifiedKFold needs every class twice; class counts {np.bincount(labels).tolist()}")
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(positions, labels)
    else:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {sorted(SUBJECT_INDEPENDENT)}")
    return [Fold(f"fold{i}", np.sort(tr), np.sort(te)) for i, (tr, te) in enumerate(splits)]


def inner_validation_split(fold: Fold, subjects: np.ndarray, fraction: float, seed: int) -> Fold:
    """Hold out ``fraction`` of the fold's training subjects for model selection."""
    train_subjects = subjects[fold.train]
    if len(np.unique(train_subjects)) < 2:
        raise ValueError(f"fold {fold.name}: an inner validation split needs two training subjects")
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    inner_train, inner_val = next(splitter.split(fold.train, groups=train_subjects))
    return Fold(fold.name, fold.train[inner_train], fold.test, fold.train[inner_val])


def class_weights(train_labels: np.ndarray, n_classes: int, power: float = 1.0) -> np.ndarray:
    """Inverse class frequency of the training fold to the given power (1 =
    inverse frequency, 0.5 = its square root), scaled to mean 1 over classes
    present; a class absent from the fold gets weight 0 (it cannot be learnt)."""
    counts = np.bincount(train_labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1) ** power, 0.0)
    present = weights > 0
    return (weights / weights[present].mean()).astype(np.float32)


def au_cooccurrence_prior(train_au_truth: np.ndarray) -> np.ndarray:
    """P(AU j coded | AU i coded) over training samples' ground truth (A, A);
    unknown entries (-1) count as not coded; rows of never-coded AUs are 0."""
    coded = (np.asarray(train_au_truth) == 1).astype(np.float64)  # (N, A)
    together = coded.T @ coded  # (A, A) co-occurrence counts
    alone = np.diag(together).copy()
    prior = np.divide(together, alone[:, None], out=np.zeros_like(together), where=alone[:, None] > 0)
    np.fill_diagonal(prior, 0.0)
    return prior.astype(np.float32)
