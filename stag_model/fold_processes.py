"""Folds in worker processes: the fold-by-fold loop itself, spread over the CPU's cores.

On a CPU a training step of this size (a batch of 32 samples, 28 x 28 flow, 15 ROIs) is bound by
arithmetic and memory traffic, not by per-call overhead: two threads in one process speed a step up
by only ~1.3x, and training many folds as one vmapped computation (``stag_model.fold_parallel``) is
no faster per fold than one at a time (BENCHMARKS.md section 9). What the cores do give is one fold
per core: ``run_in_processes`` starts one worker process per core (spawned, one torch thread each,
the samples sent once), hands each a (seed, fold) at a time, and runs the reference loop
(``stag_model.train.fit_fold``) there, with the dense E-GAT (the same function as torch-geometric's,
faster on the CPU). Every fold's randomness comes from its own seed as in the reference, so each
fold trains as it would alone, dropout included, to float tolerance.

Progress: each worker puts every finished epoch's figures (``stag_model.training_log.EpochRecord``)
on a queue that this process drains while it waits for folds, into the run's ``TrainingLog``
(TensorBoard files, the progress bar): per-epoch progress on this path too.
"""
from __future__ import annotations

import multiprocessing
import queue
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable

import torch

from stag_model.allocator import keep_freed_memory
from stag_model.data import StoreSamples, make_source
from stag_model.protocols import Fold, GuardedLabels
from stag_model.training_log import TrainingLog

_WORKER: dict = {}  # in each worker process: its samples, source, configs and the epoch queue
POLL_S = 0.5  # how often the parent drains the epoch queue while it waits for folds


def _start_worker(samples: StoreSamples, configs: dict, epochs) -> None:
    torch.set_num_threads(1)
    keep_freed_memory()
    _WORKER.update(samples=samples, configs=configs, epochs=epochs,
                   source=make_source(samples, configs["data"], torch.device("cpu")))


def _fit(seed: int, fold: Fold):
    from stag_model.train import fit_fold

    samples, configs = _WORKER["samples"], _WORKER["configs"]
    labels = GuardedLabels(samples.labels, fold.train, fold.name)
    return fit_fold(samples, _WORKER["source"], fold, labels, configs, seed, torch.device("cpu"),
                    on_epoch=_WORKER["epochs"].put, dense_gat=True)


def _drain(epochs, monitor: TrainingLog) -> None:
    """Every epoch record the workers have queued so far, into ``monitor``."""
    while True:
        try:
            monitor.epoch(epochs.get_nowait())
        except queue.Empty:
            return


def run_in_processes(samples: StoreSamples, folds: list[Fold], configs: dict, seeds: tuple[int, ...],
                     processes: int, log: Callable[[str], None] = print,
                     on_fold: Callable | None = None, monitor: TrainingLog | None = None) -> dict[int, list]:
    """Every fold of every seed, ``processes`` at a time in worker processes; {seed: [FoldResult]}
    in fold order, like ``stag_model.train.run_folds`` per seed. ``monitor`` hears every epoch."""
    started = time.perf_counter()
    monitor = monitor or TrainingLog()
    results: dict[int, dict[str, object]] = {seed: {} for seed in seeds}
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked OpenMP or threads
    epochs = context.Queue()
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker,
                             initargs=(samples, configs, epochs)) as pool:
        futures = {pool.submit(_fit, seed, fold): (seed, fold) for seed in seeds for fold in folds}
        pending, done = set(futures), 0
        index = {fold.name: i for i, fold in enumerate(folds, 1)}  # "fold i/n" as the fold-by-fold loop says
        while pending:
            finished, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            _drain(epochs, monitor)
            for future in finished:
                done += 1
                seed, fold = futures[future]
                result = future.result()
                results[seed][fold.name] = result
                monitor.fold_done(seed, fold.name)
                correct = int((result.probabilities.argmax(1) == samples.labels[fold.test]).sum())
                log(f"seed {seed} fold {index[fold.name]}/{len(folds)} {fold.name}: train {len(fold.train)} test "
                    f"{len(fold.test)} correct {correct}/{len(fold.test)} ({result.seconds:.1f} s, loss "
                    f"{result.train_loss[-1]:.3f}; {done}/{len(futures)} folds done, "
                    f"{time.perf_counter() - started:.0f} s elapsed)")
                if on_fold:
                    on_fold(result)
    _drain(epochs, monitor)  # what the last workers queued before they exited
    return {seed: [by_fold[fold.name] for fold in folds] for seed, by_fold in results.items()}
