"""Fold-parallel training: the models of many folds (and seeds) trained together as one computation.

Every fold's model is the same network with parameters of its own; the parameters of M *members*
(fold, seed) are stacked along a leading axis and one training step runs all of them through
``torch.func.vmap`` over ``torch.func.functional_call``:

    params (M, ...) --vmap(functional_call(model))--> logits (M, B, C) --> loss (M,) --> grads (M, ...)

Each member sees exactly what the fold-by-fold loop (``stag_model.train.fit_fold``, the reference)
shows its fold: its training positions in its own epoch orders, flips and shifts drawn from its own
generator in the same order, its own normalisation statistics, class weights and AU co-occurrence
prior, the learning rate of its own step count, its own gradient clipping and AdamW state. Members'
epochs differ in length (their training sets do): a batch is padded to the step's largest one,
padded samples are left out of the loss (``valid``) and out of batch-norm statistics
(``MaskedBatchNorm2d``), and a member without a batch this step (or with one sample, which the
reference skips) keeps its parameters, optimiser state and batch-norm statistics. So with dropout
off a member's loss curve is the reference's to float tolerance (tests/model); with dropout on,
vmap draws the masks and the equivalence is statistical (BENCHMARKS.md). The E-GAT runs its dense
form (``model.dense_gatv2``, equal to torch-geometric's). Prediction, attention and checkpoints
use the reference code on each member's trained model.

Needs the features in memory (``InMemorySource``), fixed epochs (no inner validation split) and no
mixup; ``supported`` says why not otherwise, and the trainer then runs fold by fold.
"""
from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call, vmap

from schemas.model_config import CLASS_WEIGHT_POWER, DataConfig, TrainConfig
from stag_model import registry
from stag_model.augment import flip_horizontally, random_shifts, shift_fields
from stag_model.data import CHANNEL_AXIS, InMemorySource, Normaliser, StoreSamples, _to_batch
from stag_model.model import StagBatch
from stag_model.protocols import Fold, GuardedLabels, au_cooccurrence_prior, class_weights
from stag_model.streaming import split_batches
from stag_model.training_log import EpochRecord, TrainingLog

# -- batch norm over the valid samples of a padded batch ----------------------------------------
_VALID = threading.local()


@contextmanager
def valid_samples(valid: torch.Tensor) -> Iterator[None]:
    """Inside the block, ``MaskedBatchNorm2d`` in training mode takes its statistics over the samples
    where ``valid`` (B,) is True (an input of B * K rows repeats each sample's flag K times)."""
    _VALID.mask = valid
    try:
        yield
    finally:
        _VALID.mask = None


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics skip padded samples (see ``valid_samples``):

        mean = sum_n w_n x_n / N,  var = sum_n w_n (x_n - mean)^2 / N   over valid rows and pixels (N of them)
        running <- (1 - momentum) running + momentum * (mean, var * N / (N - 1))

    Outside ``valid_samples`` or in eval mode it is nn.BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (N, C, H, W)
        mask = getattr(_VALID, "mask", None)
        if not self.training or mask is None:
            return super().forward(x)
        rows = mask.repeat_interleave(x.shape[0] // mask.shape[0]).to(x.dtype)  # (N,) frames of a sample alike
        w = rows.view(-1, 1, 1, 1)
        n = (rows.sum() * x.shape[2] * x.shape[3]).clamp(min=1)
        mean = (x * w).sum((0, 2, 3)) / n  # (C,)
        var = ((x - mean.view(1, -1, 1, 1)) ** 2 * w).sum((0, 2, 3)) / n  # (C,) biased, as batch norm uses
        with torch.no_grad():
            unbiased = var * n / (n - 1).clamp(min=1)
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
            self.num_batches_tracked.add_(1)
        y = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ExplicitAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention that always takes its explicit softmax path (as with ``need_weights``):
    torch's fused scaled_dot_product_attention has no vmap batching rule on the CPU and would run
    once per member. Same function, same parameters."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        out, weights = super().forward(query, key, value, key_padding_mask=key_padding_mask, need_weights=True,
                                       attn_mask=attn_mask, average_attn_weights=average_attn_weights,
                                       is_causal=is_causal)
        return out, (weights if need_weights else None)


def vectorisable(model: nn.Module) -> nn.Module:
    """The model, changed in place to run under vmap: masked batch norm, explicit attention, the dense
    E-GAT (each the same function with the same parameters)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = MaskedBatchNorm2d
        if type(module) is nn.MultiheadAttention:
            module.__class__ = ExplicitAttention
        if hasattr(module, "dense"):
            module.dense = True
    return model


def supported(source, train: TrainConfig) -> str | None:
    """Why the fold-parallel path cannot run this configuration, or None when it can."""
    if not registry.entry(train.model).vmap:
        return f"{train.model} is not set up for the fold-parallel (vmap) path"
    if not isinstance(source, InMemorySource):
        return "the store's features are streamed (larger than DataConfig.keep_on_device_max_bytes)"
    if train.validation != "none":
        return "an inner validation split picks each fold's epoch"
    if train.mixup_alpha > 0:
        return "mixup is on"
    return None


# -- one member: a (fold, seed) pair ---------------------------------------------------------
@dataclass
class Member:
    """What one fold of one seed trains with (all from its training positions)."""

    fold: Fold
    seed: int
    fold_seed: int
    orders: list[np.ndarray]  # each epoch's training positions
    generator: torch.Generator  # flips and shifts, drawn in the reference's order
    normaliser: Normaliser | None
    targets: dict[int, int]  # training position -> class (read through GuardedLabels)
    state: dict[str, torch.Tensor]  # initial parameters and buffers (class weights and AU prior set)
    steps: int = 0  # optimiser steps taken (the learning-rate schedule's clock)
    losses: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)  # per epoch, on the augmented training inputs


def _member(samples: StoreSamples, source: InMemorySource, fold: Fold, seed: int, configs: dict,
            device: torch.device) -> Member:
    from stag_model.train import AUGMENT_SEED_OFFSET, build_model, epoch_orders, fold_seed  # the reference's own

    train: TrainConfig = configs["train"]
    data: DataConfig = configs["data"]
    s = fold_seed(seed, fold.name)
    labels = GuardedLabels(samples.labels, fold.train, fold.name)
    y_train = labels[fold.train]
    orders = epoch_orders(fold.train, train.epochs, torch.Generator().manual_seed(s))
    normaliser = Normaliser.fit(source, fold.train, train.batch_size, data.min_std) if data.normalise else None
    weighting = registry.section_config(configs).class_weighting
    alpha = torch.as_tensor(class_weights(y_train, len(samples.class_names), CLASS_WEIGHT_POWER[weighting]))
    prior = torch.as_tensor(au_cooccurrence_prior(samples.au_truth[fold.train]))
    torch.manual_seed(s)
    model = build_model(train, configs["model"], configs["ststnet"], samples, configs)
    model.set_class_weights(alpha)
    model.set_au_prior(prior)
    return Member(fold, seed, s, orders, torch.Generator().manual_seed(s + AUGMENT_SEED_OFFSET), normaliser,
                  dict(zip(fold.train.tolist(), y_train.tolist())),
                  {k: v.detach().to(device) for k, v in model.state_dict().items()})


# -- the vectorised step ----------------------------------------------------------------------
def _normalised(arrays: dict[str, torch.Tensor], members: list[Member]) -> dict[str, torch.Tensor]:
    """Each member's rows (M, B, ...) z-scored with its own statistics (``Normaliser.__call__``)."""
    if members[0].normaliser is None:
        return {k: v.float() for k, v in arrays.items()}
    out = {}
    for name, axis in CHANNEL_AXIS.items():
        x = arrays[name].float()  # (M, B, ...)
        shape = [x.shape[0]] + [1] * (x.dim() - 1)
        if axis is not None:
            shape[axis + 1 if axis >= 0 else axis] = -1
        mean = torch.stack([m.normaliser.mean[name] for m in members]).to(x.device).view(shape)  # (M, [C])
        std = torch.stack([m.normaliser.std[name] for m in members]).to(x.device).view(shape)
        out[name] = (x - mean) / std
    return out


def _adamw(flat: torch.Tensor, grad: torch.Tensor, moments: tuple[torch.Tensor, torch.Tensor], lr: torch.Tensor,
           step: torch.Tensor, active: torch.Tensor, train: TrainConfig,
           betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """torch.optim.AdamW's update of every member's parameters (flat (M, P), in place), with the
    learning rate lr (M,) and the step count step (M,) (after this update) of each member, only where
    ``active`` (M,) is True:

        m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
        p <- p (1 - lr wd) - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)"""
    b1, b2 = betas
    m, v = moments
    lr, t, on = lr.view(-1, 1).to(flat.dtype), step.view(-1, 1).to(flat.dtype), active.view(-1, 1)
    new_m = m.lerp(grad, 1 - b1)
    new_v = v * b2 + (1 - b2) * grad * grad
    denom = new_v.sqrt() / (1 - b2 ** t).sqrt() + eps
    new_p = flat * (1 - lr * train.weight_decay) - (lr / (1 - b1 ** t)) * new_m / denom
    flat.copy_(torch.where(on, new_p, flat))
    m.copy_(torch.where(on, new_m, m))
    v.copy_(torch.where(on, new_v, v))


def _clip(grad: torch.Tensor, max_norm: float) -> None:
    """nn.utils.clip_grad_norm_ per member (grad (M, P) in place): scaled by min(1, max_norm / (norm + 1e-6))."""
    grad.mul_((max_norm / (grad.norm(dim=1, keepdim=True) + 1e-6)).clamp(max=1.0))


def _bfloat16(device: torch.device, amp: bool):
    """Autocast to bfloat16 on CUDA devices that have it (no loss scaling needed); float32 otherwise."""
    if device.type == "cuda" and amp and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


@dataclass
class _StepBatch:
    """One training step of every member: sample rows (M, W), which are real (M, W), targets,
    flips and shifts, and which members step at all (M,)."""

    rows: np.ndarray
    valid: np.ndarray
    targets: np.ndarray
    flips: torch.Tensor
    shifts: torch.Tensor
    active: np.ndarray


def _step_batch(members: list[Member], chunks: list[np.ndarray], data: DataConfig) -> _StepBatch:
    """The step's batches, padded to the widest; flips and shifts drawn from each member's generator
    in the reference's order (only for batches of two or more, which it trains on)."""
    width = max(len(c) for c in chunks)
    shape = (len(members), width)
    step = _StepBatch(np.zeros(shape, np.int64), np.zeros(shape, bool), np.zeros(shape, np.int64),
                      torch.zeros(shape, dtype=torch.bool), torch.zeros(*shape, 2, dtype=torch.long),
                      np.array([len(c) >= 2 for c in chunks]))  # the reference skips batches of one
    for i, (m, chunk) in enumerate(zip(members, chunks)):
        if not step.active[i]:
            continue
        n = len(chunk)
        step.rows[i, :n], step.valid[i, :n] = chunk, True
        step.targets[i, :n] = [m.targets[p] for p in chunk.tolist()]
        step.flips[i, :n] = torch.rand(n, generator=m.generator) < data.flip_probability
        if data.shift_pixels:
            step.shifts[i, :n] = random_shifts(n, data.shift_pixels, m.generator)
    return step


def _inputs(source: InMemorySource, members: list[Member], step: _StepBatch, data: DataConfig,
            device: torch.device) -> dict[str, torch.Tensor]:
    """Every member's batch (M, W, ...): gathered, normalised with its statistics, flipped, shifted."""
    M, W = step.rows.shape
    rows = torch.as_tensor(step.rows.reshape(-1), device=device)
    fields = _normalised({k: v[rows].view(M, W, *v.shape[1:]) for k, v in source.arrays.items()}, members)
    flat = _to_batch({k: v.flatten(0, 1) for k, v in fields.items()}, source.graph)  # (M*W, ...)
    flat = flip_horizontally(flat, step.flips.flatten().to(device), source.graph)
    if data.shift_pixels:
        flat = shift_fields(flat, step.shifts.view(-1, 2).to(device))
    return {k: getattr(flat, k).view(M, W, *getattr(flat, k).shape[1:]) for k in _FIELDS}


_FIELDS = ("flow", "strain", "frame_mask", "roi_patches", "roi_stats", "au_activation", "edge_weight")
_TRACKED = ("running_mean", "running_var", "num_batches_tracked")  # buffers a training step changes


def _train_group(model: nn.Module, members: list[Member], source: InMemorySource, configs: dict,
                 device: torch.device, log: Callable[[str], None], monitor: TrainingLog) -> None:
    """Train ``members`` together; their ``state`` ends as the trained parameters and buffers;
    each epoch's training loss and accuracy of each member go to ``monitor``.

    The parameters of each member are one flat vector (M, P), viewed as the model's named tensors
    inside the vmapped function, so that clipping and AdamW are a few operations on (M, P)."""
    from stag_model.train import _learning_rate_factor  # the reference's schedule

    train: TrainConfig = configs["train"]
    data: DataConfig = configs["data"]
    named = [(n, p.shape, p.numel()) for n, p in model.named_parameters()]
    flat = torch.stack([torch.cat([m.state[n].flatten() for n, _, _ in named]) for m in members]).requires_grad_()
    buffers = {n: torch.stack([m.state[n] for m in members]) for n, _ in model.named_buffers()}
    tracked = [n for n in buffers if n.endswith(_TRACKED)]
    moments = (torch.zeros_like(flat), torch.zeros_like(flat))
    steps_per_epoch = [math.ceil(len(m.fold.train) / train.batch_size) for m in members]
    edge_index = torch.as_tensor(source.graph.edge_index, device=device)
    roi_ids = torch.arange(len(source.graph.roi_names), device=device)

    def member_loss(vector, b, fields, targets, valid):
        params = {n: piece.view(shape) for (n, shape, _), piece in zip(named, vector.split([k for *_, k in named]))}
        batch = StagBatch(**fields, edge_index=edge_index, roi_ids=roi_ids)
        with valid_samples(valid):
            logits, loss = functional_call(model, (params, b), (batch, targets), {"valid": valid})
        return loss, ((logits.argmax(-1) == targets) & valid).sum()  # (), () : the loss, correct samples

    batched_loss = vmap(member_loss, randomness="different")
    model.train()
    for epoch in range(train.epochs):
        batches = [split_batches(m.orders[epoch], train.batch_size) for m in members]
        totals, counts = np.zeros(len(members)), np.zeros(len(members), dtype=np.int64)
        correct = torch.zeros(len(members), dtype=torch.long, device=device)  # (M,), summed on the device
        for index in range(max(len(b) for b in batches)):
            step = _step_batch(members, [b[index] if index < len(b) else np.empty(0, np.int64) for b in batches], data)
            if not step.active.any():
                continue
            fields = _inputs(source, members, step, data, device)
            before = {n: buffers[n].clone() for n in tracked}
            with _bfloat16(device, train.amp):
                losses, hits = batched_loss(flat, buffers, fields, torch.as_tensor(step.targets, device=device),
                                            torch.as_tensor(step.valid, device=device))  # (M,), (M,)
            (grad,) = torch.autograd.grad(losses.sum(), [flat])
            correct += torch.where(torch.as_tensor(step.active, device=device), hits, 0)
            _clip(grad, train.grad_clip)
            for i, m in enumerate(members):
                m.steps += int(step.active[i])
            lr = torch.tensor([train.learning_rate * _learning_rate_factor(m.steps - 1, s, train)
                               for m, s in zip(members, steps_per_epoch)], device=device)
            on = torch.as_tensor(step.active, device=device)
            with torch.no_grad():
                _adamw(flat, grad, moments, lr, torch.tensor([m.steps for m in members], device=device), on, train)
                for n in tracked:
                    buffers[n].copy_(torch.where(on.view((-1,) + (1,) * (buffers[n].dim() - 1)), buffers[n], before[n]))
            sizes = step.valid.sum(1)
            totals += np.where(step.active, losses.detach().cpu().numpy() * sizes, 0.0)
            counts += np.where(step.active, sizes, 0)
        hit_counts = correct.cpu().numpy()
        for i, m in enumerate(members):
            m.losses.append(totals[i] / max(counts[i], 1))
            m.accuracy.append(hit_counts[i] / max(counts[i], 1))
            monitor.epoch(EpochRecord(m.seed, m.fold.name, epoch + 1, train.epochs,
                                      {"train/loss": m.losses[-1], "train/accuracy": m.accuracy[-1]}))
    pieces = flat.detach().split([k for *_, k in named], dim=1)
    for i, m in enumerate(members):
        m.state = {**{n: piece[i].view(shape) for (n, shape, _), piece in zip(named, pieces)},
                   **{n: b[i] for n, b in buffers.items()}}


def run_parallel(samples: StoreSamples, source: InMemorySource, folds: list[Fold], configs: dict,
                 seeds: tuple[int, ...], device: torch.device, log: Callable[[str], None] = print,
                 on_fold: Callable | None = None, monitor: TrainingLog | None = None) -> dict[int, list]:
    """Every fold of every seed trained together, ``TrainConfig.parallel_members`` at a time (0: all);
    returns {seed: [FoldResult per fold]} like ``stag_model.train.run_folds`` for each seed.
    ``monitor`` hears every member's epochs; ``log`` gets one line per fold."""
    from stag_model.train import FoldResult, build_model, fold_result

    train: TrainConfig = configs["train"]
    started = time.perf_counter()
    monitor = monitor or TrainingLog()
    pairs = [(seed, fold) for seed in seeds for fold in folds]
    index = {fold.name: i for i, fold in enumerate(folds, 1)}  # "fold i/n" as the fold-by-fold loop says
    group = train.parallel_members or len(pairs)
    template = vectorisable(build_model(train, configs["model"], configs["ststnet"], samples, configs)).to(device)
    results: dict[int, list] = {seed: [] for seed in seeds}
    for first in range(0, len(pairs), group):
        members = [_member(samples, source, fold, seed, configs, device) for seed, fold in pairs[first:first + group]]
        _train_group(template, members, source, configs, device, log, monitor)
        seconds = (time.perf_counter() - started) / (first + len(members))  # per member so far
        for m in members:
            model = build_model(train, configs["model"], configs["ststnet"], samples, configs).to(device)
            model.load_state_dict(m.state)
            for module in model.modules():  # prediction with the dense E-GAT too (the same function)
                if hasattr(module, "dense"):
                    module.dense = True
            result: FoldResult = fold_result(model, samples, source, m.fold, m.normaliser, configs, m.seed,
                                             device, m.losses, [], train.epochs)
            result.seconds = seconds
            result.train_accuracy = m.accuracy
            monitor.fold_done(m.seed, m.fold.name)
            results[m.seed].append(result)
            correct = int((result.probabilities.argmax(1) == samples.labels[m.fold.test]).sum())
            log(f"seed {m.seed} fold {index[m.fold.name]}/{len(folds)} {m.fold.name}: train {len(m.fold.train)} "
                f"test {len(m.fold.test)} "
                f"correct {correct}/{len(m.fold.test)} (loss {m.losses[-1]:.3f})")
            if on_fold:
                on_fold(result)
    return results

