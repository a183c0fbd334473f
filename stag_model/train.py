"""The fit loop: one model per fold, trained on the training fold only.

Per fold: normalisation statistics, class weights and the AU co-occurrence
prior are estimated from the training positions; the model trains for a fixed
number of epochs (or keeps the best epoch on an inner validation split of
training subjects); then it predicts the test fold, whose labels the loop never
reads (labels come through `GuardedLabels`). Defaults live in
schemas/model_config.py (TrainConfig, ModelConfig, StstnetConfig, DataConfig).
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from schemas.model_config import CLASS_WEIGHT_POWER, DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_model import registry
from stag_model.augment import flip_horizontally, random_shifts, shift_fields
from stag_model.data import Normaliser, StoreSamples
from stag_model.image_models import ImageModel
from stag_model.metrics import classification_metrics
from stag_model.model import Stag, StagBatch
from stag_model.protocols import Fold, GuardedLabels, au_cooccurrence_prior, class_weights, inner_validation_split
from stag_model.training_log import EpochRecord, TrainingLog


@dataclass
class EpochCurves:
    """A fold's figures per epoch, as ``_train_model`` records them."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    validation_uf1: list[float] = field(default_factory=list)
    validation_accuracy: list[float] = field(default_factory=list)

    def last(self) -> dict[str, float]:
        """The latest epoch's figures by TensorBoard tag (``stag_model.training_log``)."""
        tags = {"train/loss": self.train_loss, "train/accuracy": self.train_accuracy,
                "validation/uf1": self.validation_uf1, "validation/accuracy": self.validation_accuracy}
        return {tag: values[-1] for tag, values in tags.items() if values}


def _no_record(_record: EpochRecord) -> None:
    """The default ``on_epoch``: epochs are not reported."""


@dataclass
class FoldResult:
    fold: str
    seed: int
    test_positions: np.ndarray  # (n,)
    probabilities: np.ndarray  # (n, C)
    state_dict: dict[str, torch.Tensor]
    metadata: dict  # plain python: configs, names, normaliser, epochs (a torch.load(weights_only=True)-safe checkpoint)
    train_loss: list[float] = field(default_factory=list)
    validation_uf1: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)  # per epoch, on the augmented training inputs
    validation_accuracy: list[float] = field(default_factory=list)
    attention: dict[str, list[float]] = field(default_factory=dict)  # STAG: mean ROI / edge / frame attention on the test fold
    seconds: float = 0.0

    def checkpoint(self) -> dict:
        return {"state_dict": self.state_dict, "metadata": self.metadata}


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; cuda without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)


def fold_seed(seed: int, fold: str) -> int:
    """Distinct, reproducible seed per (seed, fold)."""
    return (seed * 1_000_003 + zlib.crc32(fold.encode())) % 2**31


def build_model(train: TrainConfig, model: ModelConfig, ststnet: StstnetConfig, samples: StoreSamples,
                configs: dict | None = None) -> nn.Module:
    """The model ``train.model`` names (stag_model.registry), built from its config section: ``model`` for
    STAG, ``ststnet`` for STSTNet, the section in ``configs`` for the others (its defaults without one)."""
    return registry.build({"model": model, "ststnet": ststnet, **(configs or {}), "train": train}, samples)


AUGMENT_SEED_OFFSET = 1  # the augmentation generator's seed is the fold seed plus this; the epoch order's is the fold seed
MIXED_FIELDS = ("flow", "strain", "roi_patches", "roi_stats", "au_activation", "edge_weight")


def mix_batch(b: StagBatch, partner: torch.Tensor, weight: float) -> StagBatch:
    """Mixup of every feature field: weight * sample + (1 - weight) * sample[partner];
    a frame is real when it is real in either sample. partner (B,) long."""
    mixed = {name: weight * getattr(b, name) + (1 - weight) * getattr(b, name)[partner] for name in MIXED_FIELDS}
    images = {name: weight * image + (1 - weight) * image[partner] for name, image in b.images.items()}
    return StagBatch(**{**vars(b), **mixed, "images": images, "frame_mask": b.frame_mask | b.frame_mask[partner]})


def epoch_orders(positions: np.ndarray, epochs: int, generator: torch.Generator) -> list[np.ndarray]:
    """Each epoch's shuffled training positions, drawn up front from a generator
    used for nothing else, so a streaming source can read the next epoch's first
    batches while the current one trains (``upcoming``)."""
    return [positions[torch.randperm(len(positions), generator=generator).numpy()] for _ in range(epochs)]


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()


def _learning_rate_factor(step: int, steps_per_epoch: int, train: TrainConfig) -> float:
    """Linear warm-up over ``warmup_epochs``, then ``train.schedule``: cosine decay to 0
    (warmup_cosine), lr_gamma ** (whole epochs since the warm-up) (exponential), or 1 (constant)."""
    warm = train.warmup_epochs * steps_per_epoch
    total = train.epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    if train.schedule == "exponential":
        return train.lr_gamma ** ((step - warm) // max(1, steps_per_epoch))
    if train.schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


@torch.no_grad()
def predict(model: nn.Module, source, normaliser: Normaliser | None, positions: np.ndarray, batch_size: int,
            device: torch.device, amp: bool, test_time_flip: bool = False) -> np.ndarray:
    """Class probabilities (n, C) in the order of ``positions``; reads no label.
    With ``test_time_flip`` each sample's probabilities are averaged with its mirror image's."""
    model.eval()
    out = {}
    for pos, batch in source.batches(positions, batch_size):
        batch = normaliser(batch) if normaliser else batch
        with _autocast(device, amp):
            probs = model(batch)[0].float().softmax(-1)  # (B, C)
            if test_time_flip:
                mirrored = flip_horizontally(batch, torch.ones(len(pos), dtype=torch.bool, device=device), source.graph)
                probs = (probs + model(mirrored)[0].float().softmax(-1)) / 2  # (B, C)
        for p, row in zip(pos.tolist(), probs.cpu().numpy()):
            out[p] = row
    return np.stack([out[p] for p in positions.tolist()])


@torch.no_grad()
def mean_attention(model: nn.Module, source, normaliser: Normaliser | None, positions: np.ndarray, batch_size: int
                   ) -> dict[str, list[float]]:
    """STAG's attention averaged over samples (and frames, heads): ``rois`` (R,),
    ``edges`` (E,) averaged over both directions of each edge, ``frames`` (K,). An image model's
    saliency instead (``ImageModel.saliency``): ``saliency:<role>`` (S * S,) per input role.
    Empty for other models."""
    if isinstance(model, ImageModel):
        return mean_saliency(model, source, normaliser, positions, batch_size)
    if not isinstance(model, Stag):
        return {}
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for _, batch in source.batches(positions, batch_size):
        att = model.explain(normaliser(batch) if normaliser else batch)
        parts = {"frames": att["frames"].sum(0)}
        if "rois" in att:
            directed = att["edges"].mean(-1).sum((0, 1))  # (2E,)
            E = directed.shape[0] // 2
            parts.update(rois=att["rois"].sum(0), edges=(directed[:E] + directed[E:]) / (2 * att["edges"].shape[1]))
        for k, v in parts.items():
            sums[k] = sums[k] + v if k in sums else v
    return {k: (v / len(positions)).cpu().tolist() for k, v in sums.items()}


def mean_saliency(model: ImageModel, source, normaliser: Normaliser | None, positions: np.ndarray, batch_size: int
                  ) -> dict[str, list[float]]:
    """``saliency:<role>``: the role's input saliency (``ImageModel.saliency``, (S, S) per sample) averaged
    over ``positions``, flattened row by row."""
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for _, batch in source.batches(positions, batch_size):
        for role, value in model.saliency(normaliser(batch) if normaliser else batch).items():
            sums[role] = sums[role] + value.sum(0) if role in sums else value.sum(0)
    return {f"saliency:{role}": (v / len(positions)).flatten().cpu().tolist() for role, v in sums.items()}


def _train_model(model: nn.Module, source, normaliser: Normaliser | None, fold: Fold, labels: GuardedLabels,
                 configs: dict, seed: int, orders: list[np.ndarray], device: torch.device,
                 on_epoch: Callable[[EpochRecord], None], run_seed: int) -> tuple[EpochCurves, int]:
    """Train one model on ``fold.train`` (in place), epoch e in ``orders[e]``. Returns the training
    loss and accuracy (and the validation UF1 and accuracy) per epoch, each also sent to ``on_epoch``
    as it is known (tagged with ``run_seed``), and the epoch kept (the best on the inner validation
    split when there is one, else the last)."""
    train: TrainConfig = configs["train"]
    data: DataConfig = configs["data"]
    n_classes = model.class_weights.numel()
    # fused: one kernel for every parameter (the same update; ~10% of a CPU step with the per-tensor loop)
    optimiser = torch.optim.AdamW(model.parameters(), lr=train.learning_rate, weight_decay=train.weight_decay,
                                  fused=True)
    steps = math.ceil(len(fold.train) / train.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: _learning_rate_factor(step, steps, train))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and train.amp
                                  and not torch.cuda.is_bf16_supported())
    generator = torch.Generator().manual_seed(seed + AUGMENT_SEED_OFFSET)  # flips, shifts and mixup partners
    mixing = np.random.default_rng(seed)  # mixup weights
    label_of = dict(zip(fold.train.tolist(), labels[fold.train].tolist()))
    curves = EpochCurves()
    best = (-1.0, None, train.epochs)
    for epoch in range(train.epochs):
        model.train()
        total, count = 0.0, 0
        correct = torch.zeros((), dtype=torch.long, device=device)  # summed on the device: no sync per step
        upcoming = orders[epoch + 1] if epoch + 1 < train.epochs else None
        for pos, batch in source.batches(orders[epoch], train.batch_size, upcoming=upcoming):
            if len(pos) < 2:  # BatchNorm cannot train on one sample
                continue
            batch = normaliser(batch) if normaliser else batch
            flips = torch.rand(len(pos), generator=generator) < data.flip_probability
            batch = flip_horizontally(batch, flips.to(device), source.graph)
            if data.shift_pixels:
                batch = shift_fields(batch, random_shifts(len(pos), data.shift_pixels, generator).to(device))
            targets = torch.as_tensor([label_of[p] for p in pos.tolist()], device=device)
            with _autocast(device, train.amp):
                if train.mixup_alpha > 0:
                    weight = float(mixing.beta(train.mixup_alpha, train.mixup_alpha))
                    partner = torch.randperm(len(pos), generator=generator).to(device)
                    logits, _ = model(mix_batch(batch, partner, weight))
                    loss = weight * model.criterion(logits, targets) + (1 - weight) * model.criterion(
                        logits, targets[partner])
                else:
                    logits, loss = model(batch, targets)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimiser)
            nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            scaler.step(optimiser)
            scaler.update()
            schedule.step()
            correct += (logits.detach().argmax(-1) == targets).sum()
            total, count = total + loss.item() * len(pos), count + len(pos)
        curves.train_loss.append(total / max(count, 1))
        curves.train_accuracy.append(correct.item() / max(count, 1))
        if len(fold.validation):
            probs = predict(model, source, normaliser, fold.validation, train.batch_size, device, train.amp,
                            train.test_time_flip)
            scores = classification_metrics(labels[fold.validation], probs.argmax(1), n_classes)
            curves.validation_uf1.append(scores["uf1"])
            curves.validation_accuracy.append(scores["accuracy"])
            if curves.validation_uf1[-1] > best[0]:
                best = (curves.validation_uf1[-1], copy.deepcopy(model.state_dict()), epoch + 1)
        on_epoch(EpochRecord(run_seed, fold.name, epoch + 1, train.epochs, curves.last()))
    if best[1] is not None:
        model.load_state_dict(best[1])
    return curves, best[2]


def fit_fold(samples: StoreSamples, source, fold: Fold, labels: GuardedLabels, configs: dict, seed: int,
             device: torch.device, on_epoch: Callable[[EpochRecord], None] = _no_record,
             dense_gat: bool = False) -> FoldResult:
    """Train on ``fold.train`` and predict ``fold.test``. ``configs`` holds
    train/model/ststnet/data configs. ``labels`` must refuse test positions. ``on_epoch`` hears each
    epoch's training (and validation) figures, never a test-fold one. ``dense_gat`` runs STAG's
    E-GAT in its dense form (the same function as torch-geometric's, faster on a CPU)."""
    train: TrainConfig = configs["train"]
    data: DataConfig = configs["data"]
    started = time.perf_counter()
    s = fold_seed(seed, fold.name)
    torch.manual_seed(s)
    if train.validation == "inner_subjects":
        fold = inner_validation_split(fold, samples.subjects, train.validation_fraction, s)
    y_train = labels[fold.train]
    n_classes = len(samples.class_names)
    # the epoch orders from a generator of their own: the normaliser's pass reads ahead the first batches
    # of the first epoch, as every epoch does for the next one
    orders = epoch_orders(fold.train, train.epochs, torch.Generator().manual_seed(s))
    normaliser = (Normaliser.fit(source, fold.train, train.batch_size, data.min_std, upcoming=orders[0])
                  if data.normalise else None)
    weighting = registry.section_config(configs).class_weighting
    alpha = torch.as_tensor(class_weights(y_train, n_classes, CLASS_WEIGHT_POWER[weighting]), device=device)
    prior = torch.as_tensor(au_cooccurrence_prior(samples.au_truth[fold.train]), device=device)
    torch.manual_seed(s)
    model = build_model(train, configs["model"], configs["ststnet"], samples, configs).to(device)
    if dense_gat and isinstance(model, Stag) and model.gat is not None:
        model.gat.dense = True
    model.set_class_weights(alpha)  # copied into the model's buffer
    model.set_au_prior(prior)
    curves, epochs_kept = _train_model(model, source, normaliser, fold, labels, configs, s, orders, device,
                                       on_epoch, seed)
    result = fold_result(model, samples, source, fold, normaliser, configs, seed, device, curves.train_loss,
                         curves.validation_uf1, epochs_kept)
    result.train_accuracy, result.validation_accuracy = curves.train_accuracy, curves.validation_accuracy
    result.seconds = time.perf_counter() - started
    return result


def fold_result(model: nn.Module, samples: StoreSamples, source, fold: Fold, normaliser: Normaliser | None,
                configs: dict, seed: int, device: torch.device, losses: list[float], validation_uf1: list[float],
                epochs_kept: int) -> FoldResult:
    """A trained fold's result: test probabilities, attention, weights and the checkpoint's metadata."""
    train: TrainConfig = configs["train"]
    result = FoldResult(fold.name, seed, fold.test, np.empty(0), {}, {}, train_loss=losses,
                        validation_uf1=validation_uf1)
    result.probabilities = predict(model, source, normaliser, fold.test, train.batch_size, device, train.amp,
                                   train.test_time_flip)
    result.attention = mean_attention(model, source, normaliser, fold.test, train.batch_size)
    result.state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    result.metadata = {
        "model": train.model, "fold": fold.name, "seed": seed, "epochs_kept": epochs_kept,
        "configs": {k: v.model_dump(mode="json") for k, v in configs.items()},
        "inputs": [r.as_json() for r in samples.inputs],
        "class_names": list(samples.class_names), "roi_names": list(samples.graph.roi_names),
        "au_names": list(samples.graph.au_names), "edge_index": samples.graph.edge_index.tolist(),
        "normaliser": normaliser.state() if normaliser else None,
        "train_subjects": sorted(set(samples.subjects[fold.train].tolist())),
        "test_subjects": sorted(set(samples.subjects[fold.test].tolist())),
    }
    return result


def run_folds(samples: StoreSamples, source, folds: list[Fold], configs: dict, seed: int, device: torch.device,
              log: Callable[[str], None] = print, on_fold: Callable[[FoldResult], None] | None = None,
              monitor: TrainingLog | None = None) -> list[FoldResult]:
    """Every fold for one seed; ``on_fold`` receives each result as it finishes, ``monitor`` each
    epoch's figures (``stag_model.training_log``), ``log`` one line per fold."""
    monitor = monitor or TrainingLog()
    results = []
    for i, fold in enumerate(folds):
        guarded = GuardedLabels(samples.labels, fold.train, fold.name)
        monitor.fold_started(seed, fold.name, i + 1, len(folds))
        result = fit_fold(samples, source, fold, guarded, configs, seed, device, on_epoch=monitor.epoch)
        monitor.fold_done(seed, fold.name)
        correct = int((result.probabilities.argmax(1) == samples.labels[fold.test]).sum())
        log(f"seed {seed} fold {i + 1}/{len(folds)} {fold.name}: train {len(fold.train)} test {len(fold.test)} "
            f"correct {correct}/{len(fold.test)} ({result.seconds:.1f} s, loss {result.train_loss[-1]:.3f})")
        if on_fold:
            on_fold(result)
        results.append(result)
    return results


def parallel_mode(train: TrainConfig, source, device: torch.device) -> tuple[str, str]:
    """(mode, why): how ``run_protocol`` trains the folds (``TrainConfig.parallel`` resolved) and, when
    that is not what was asked for, why."""
    from stag_model.fold_parallel import supported

    asked = train.parallel
    if asked == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        asked = "vmap" if device.type == "cuda" else ("processes" if cores > 1 else "none")
    if asked == "vmap" and (why := supported(source, train)) is not None:
        return "none", why
    if asked == "processes" and device.type != "cpu":
        return "none", "worker processes train on the CPU"
    return asked, ""


def run_protocol(samples: StoreSamples, source, folds: list[Fold], configs: dict, device: torch.device,
                 log: Callable[[str], None] = print, monitor: TrainingLog | None = None
                 ) -> tuple[dict[int, list[FoldResult]], str]:
    """Every fold of every seed of ``configs["train"].seeds``, trained as ``TrainConfig.parallel`` says
    (``parallel_mode``): all together under vmap (``stag_model.fold_parallel``), one fold per CPU core
    (``stag_model.fold_processes``), or one after another here (``run_folds``, the reference).
    ``monitor`` hears every epoch of every fold whichever the path. Returns {seed: results} and a
    description of the path taken."""
    from stag_model.fold_parallel import run_parallel
    from stag_model.fold_processes import run_in_processes

    train: TrainConfig = configs["train"]
    mode, why = parallel_mode(train, source, device)
    if why:
        log(f"training fold by fold: {why}")
    if mode == "vmap":
        members = len(folds) * len(train.seeds)
        at_a_time = f"{min(train.parallel_members, members)} at a time" if train.parallel_members else "all at once"
        return (run_parallel(samples, source, folds, configs, train.seeds, device, log, monitor=monitor),
                f"vmap: the (fold, seed) models stacked, {at_a_time}")
    if mode == "processes":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        count = min(train.processes or cores, len(folds) * len(train.seeds))
        return (run_in_processes(samples, folds, configs, train.seeds, count, log, monitor=monitor),
                f"processes: one fold per worker, {count} at a time")
    results = {seed: run_folds(samples, source, folds, configs, seed, device, log, monitor=monitor)
               for seed in train.seeds}
    return results, "fold by fold" + (f" ({why})" if why else "")
