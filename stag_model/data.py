"""Store -> tensors: committed, labelled samples of one or more feature stores.

Two paths give the trainer the same `StagBatch`es:

- `InMemorySource`: a small store is read once and kept on the device; a batch
  is an index into resident tensors (no copies, no workers).
- `StreamingSource`: a large store is read sample by sample from Zarr in
  DataLoader workers, collated into pinned memory and copied with
  ``non_blocking=True`` while the next batch is prepared (``prefetch_factor``).

Both read through `read_samples`, so the two paths cannot disagree. Stores
without ROI patches (the precomputed 28 x 28 composite) get a g x g grid of
flow cells as ROI nodes (`grid_rois`). ROI statistics' direction (radians) is
replaced by (cos, sin) so that a horizontal flip is a sign change.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader, Dataset

from schemas.model_config import DataConfig
from stag_model.model import StagBatch

FEATURE_ARRAYS = ("flow", "strain", "roi_patches", "roi_stats", "au_activation", "edge_weight")
DIRECTION_STAT = 3  # roi_stats: mean u, mean v, mean magnitude, direction (rad) -> (cos, sin) at read time
STAT_NAMES = ("mean_u", "mean_v", "mean_magnitude", "direction_cos", "direction_sin")
FLIP_NEGATED_STATS = (0, 3)  # mean u and cos(direction) change sign under a horizontal flip


@dataclass(frozen=True)
class GraphSpec:
    """ROI graph shared by every sample, and the left/right pairings a flip needs."""

    roi_names: tuple[str, ...]
    au_names: tuple[str, ...]
    edge_index: np.ndarray  # (E, 2) int64
    roi_mirror: np.ndarray  # (R,) ROI position that ROI r becomes under a flip
    edge_mirror: np.ndarray  # (E,) edge position that edge e becomes under a flip
    au_mirror: np.ndarray  # (A,)
    grid: bool  # True when the ROIs are grid cells made here (store had none)


def _swap_side(name: str) -> str:
    """'eye_left' -> 'eye_right', 'L12' / 'AUL12' -> 'R12' / 'AUR12', anything else unchanged."""
    if re.search(r"left|right", name):
        return re.sub(r"left|right", lambda m: "right" if m.group() == "left" else "left", name)
    m = re.fullmatch(r"(AU)?([LR])(\d+)", name)
    if m:
        return f"{m.group(1) or ''}{'R' if m.group(2) == 'L' else 'L'}{m.group(3)}"
    return name


def mirror_positions(names: tuple[str, ...]) -> np.ndarray:
    """Position of each name's left/right partner (itself when it has no side)."""
    where = {n: i for i, n in enumerate(names)}
    return np.array([where.get(_swap_side(n), i) for i, n in enumerate(names)], dtype=np.int64)


def edge_mirror_positions(edge_index: np.ndarray, roi_mirror: np.ndarray, where: str) -> np.ndarray:
    """Position of each edge's mirror image; raises if the graph is not left/right symmetric."""
    lookup = {frozenset(map(int, e)): i for i, e in enumerate(edge_index)}
    out = []
    for i, j in edge_index:
        key = frozenset((int(roi_mirror[i]), int(roi_mirror[j])))
        if key not in lookup:
            raise ValueError(f"{where}: edge ({i}, {j}) has no mirror edge {tuple(key)}; the ROI graph is not "
                             "left/right symmetric, so flip augmentation is undefined (set flip_probability=0)")
        out.append(lookup[key])
    return np.array(out, dtype=np.int64)


def grid_graph(g: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """g x g cells: names, 4-neighbour edges (E, 2), mirror (column j -> g-1-j)."""
    names = tuple(f"cell_r{r}_c{c}" for r in range(g) for c in range(g))
    edges = [(r * g + c, r * g + c + 1) for r in range(g) for c in range(g - 1)]
    edges += [(r * g + c, (r + 1) * g + c) for r in range(g - 1) for c in range(g)]
    mirror = np.array([r * g + (g - 1 - c) for r in range(g) for c in range(g)], dtype=np.int64)
    return names, np.array(edges, dtype=np.int64).reshape(-1, 2), mirror


def grid_roi_features(flow: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells of the flow as ROIs. flow (N, K, 2, H, W) -> patches (N, K, g*g, 2, h, w)
    with h = H // g, and stats (N, K, g*g, 4) like the store's (direction in rad)."""
    N, K, C, H, W = flow.shape
    h, w = H // g, W // g
    cells = flow[..., : g * h, : g * w].reshape(N, K, C, g, h, g, w)  # (N, K, 2, g, h, g, w)
    patches = cells.transpose(0, 1, 3, 5, 2, 4, 6).reshape(N, K, g * g, C, h, w)  # (N, K, g*g, 2, h, w)
    mean_u, mean_v = patches[:, :, :, 0].mean((-2, -1)), patches[:, :, :, 1].mean((-2, -1))  # (N, K, g*g)
    magnitude = np.sqrt((patches.astype(np.float32) ** 2).sum(3)).mean((-2, -1))  # (N, K, g*g)
    stats = np.stack([mean_u, mean_v, magnitude, np.arctan2(mean_v, mean_u)], -1).astype(np.float32)
    return patches, stats


def read_samples(group: zarr.Group, slots: np.ndarray, config: DataConfig) -> dict[str, np.ndarray]:
    """Feature arrays of the given slots (sorted), float32, direction as (cos, sin),
    grid ROIs when the store has none."""
    out = {name: np.asarray(group[name].oindex[slots], dtype=np.float32) for name in FEATURE_ARRAYS}
    if out["roi_patches"].shape[2] == 0:
        out["roi_patches"], out["roi_stats"] = grid_roi_features(out["flow"], config.grid_rois)
        out["edge_weight"] = np.ones(out["flow"].shape[:2] + (len(grid_graph(config.grid_rois)[1]),), np.float32)
    direction = out["roi_stats"][..., DIRECTION_STAT]
    out["roi_stats"] = np.concatenate(
        [out["roi_stats"][..., :DIRECTION_STAT], np.cos(direction)[..., None], np.sin(direction)[..., None]], -1
    )
    return out


@dataclass
class StoreSamples:
    """Identity, labels and graph of the samples a run uses (features are read by a source)."""

    paths: list[Path]
    slots: list[np.ndarray]  # per store: raw slots of the used samples
    sample_ids: np.ndarray  # (N,) str
    subjects: np.ndarray  # (N,) str, prefixed by dataset when several stores are read
    datasets: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) int64
    au_truth: np.ndarray  # (N, A) int8
    class_names: tuple[str, ...]
    graph: GraphSpec
    frames: int
    feature_bytes: int  # float32 bytes of every feature array of every sample

    def __len__(self) -> int:
        return len(self.labels)


def open_samples(paths: list[str | Path], config: DataConfig) -> StoreSamples:
    """Committed samples labelled under ``config.scheme`` in every store."""
    if not paths:
        raise ValueError("no store given; pass at least one --store")
    parts, reference = [], None
    for path in map(Path, paths):
        if not (path / "zarr.json").exists():
            raise FileNotFoundError(f"no feature store at {path} (zarr.json missing); build one with stag-ingest")
        group = zarr.open_group(str(path), mode="r")
        attrs = group.attrs
        schemes = dict(attrs.get("class_schemes", {}))
        if config.scheme not in schemes:
            raise KeyError(f"store {path} has no class scheme {config.scheme!r}; it has {sorted(schemes)}")
        scheme_names = [str(s) for s in group["scheme_name"][:]]
        labels = np.asarray(group["label"][:, scheme_names.index(config.scheme)], dtype=np.int64)
        keep = np.flatnonzero(np.asarray(group["committed"][:], dtype=bool) & (labels >= 0))
        if keep.size == 0:
            raise ValueError(f"store {path}: no committed sample carries a label of scheme {config.scheme!r}")
        roi_names = tuple(str(n) for n in group["roi_name"][:])
        edges = np.asarray(group["edge_index"][:], dtype=np.int64).reshape(-1, 2)
        if not roi_names:
            roi_names, edges, _ = grid_graph(config.grid_rois)
        ident = (roi_names, tuple(str(a) for a in group["au_name"][:]), edges.tolist(), tuple(schemes[config.scheme]))
        if reference is not None and ident != reference[1]:
            raise ValueError(f"store {path} differs from {reference[0]} in ROIs, AUs, edges or the classes of "
                             f"{config.scheme!r}; only stores built with the same graph can be trained together")
        reference = reference or (path, ident)
        k, h, w = group["flow"].shape[1], group["flow"].shape[3], group["flow"].shape[4]
        parts.append(dict(path=path, group=group, keep=keep, labels=labels[keep], khw=(k, h, w),
                          dataset=str(attrs.get("dataset", path.stem))))
    if len({p["khw"] for p in parts}) > 1:
        raise ValueError("stores differ in frames or flow size: " + ", ".join(f"{p['path']}: (K, H, W)={p['khw']}"
                                                                          for p in parts))
    roi_names, au_names, edges, class_names = reference[1]
    edge_index = np.array(edges, dtype=np.int64).reshape(-1, 2)
    roi_mirror = mirror_positions(roi_names)
    edge_mirror = (edge_mirror_positions(edge_index, roi_mirror, str(reference[0])) if config.flip_probability > 0
                   else np.arange(len(edge_index)))
    graph = GraphSpec(roi_names, au_names, edge_index, roi_mirror, edge_mirror, mirror_positions(au_names),
                      grid=parts[0]["group"]["roi_name"].shape[0] == 0)
    several = len(parts) > 1
    names = [p["dataset"] for p in parts]
    for p in parts:  # two stores of one dataset name stay distinguishable (leave-one-dataset-out)
        if names.count(p["dataset"]) > 1:
            p["dataset"] = f"{p['dataset']}:{p['path'].stem}"
    ids, subjects, datasets = [], [], []
    for p in parts:
        g = p["group"]
        ids.append(np.array([str(s) for s in g["sample_id"].oindex[p["keep"]]]))
        subj = np.array([str(s) for s in g["subject"].oindex[p["keep"]]])
        subjects.append(np.char.add(f"{p['dataset']}/", subj) if several else subj)
        datasets.append(np.full(len(p["keep"]), p["dataset"]))
    probe = read_samples(parts[0]["group"], parts[0]["keep"][:1], config)
    n = sum(len(p["keep"]) for p in parts)
    return StoreSamples(
        paths=[p["path"] for p in parts], slots=[p["keep"] for p in parts], sample_ids=np.concatenate(ids),
        subjects=np.concatenate(subjects), datasets=np.concatenate(datasets),
        labels=np.concatenate([p["labels"] for p in parts]),
        au_truth=np.concatenate([np.asarray(p["group"]["au_truth"].oindex[p["keep"]], np.int8) for p in parts]),
        class_names=class_names, graph=graph, frames=parts[0]["khw"][0],
        feature_bytes=n * sum(a.nbytes for a in probe.values()),
    )


def _to_batch(arrays: dict[str, torch.Tensor], graph: GraphSpec) -> StagBatch:
    n, k = arrays["flow"].shape[:2]
    device = arrays["flow"].device
    return StagBatch(
        flow=arrays["flow"], strain=arrays["strain"], frame_mask=torch.ones(n, k, dtype=torch.bool, device=device),
        roi_patches=arrays["roi_patches"], roi_stats=arrays["roi_stats"], au_activation=arrays["au_activation"],
        edge_weight=arrays["edge_weight"], edge_index=torch.as_tensor(graph.edge_index, device=device),
        roi_ids=torch.arange(len(graph.roi_names), device=device),
    )


class InMemorySource:
    """Every sample's features read once and kept on ``device``."""

    def __init__(self, samples: StoreSamples, config: DataConfig, device: torch.device):
        per_store = [read_samples(zarr.open_group(str(p), mode="r"), s, config)
                     for p, s in zip(samples.paths, samples.slots)]
        self.arrays = {k: torch.from_numpy(np.concatenate([d[k] for d in per_store])).to(device)
                       for k in FEATURE_ARRAYS}
        self.graph = samples.graph

    def batches(self, positions: np.ndarray, batch_size: int, generator: torch.Generator | None = None
                ) -> Iterator[tuple[np.ndarray, StagBatch]]:
        """(positions, batch) pairs; shuffled when a generator is given."""
        order = positions[torch.randperm(len(positions), generator=generator).numpy()] if generator else positions
        for start in range(0, len(order), batch_size):
            pos = order[start:start + batch_size]
            index = torch.as_tensor(pos, device=self.arrays["flow"].device)
            yield pos, _to_batch({k: v[index] for k, v in self.arrays.items()}, self.graph)


class _SampleDataset(Dataset):
    """One sample per item, read from its store in the worker process."""

    def __init__(self, samples: StoreSamples, config: DataConfig):
        self.locations = [(si, int(slot)) for si, slots in enumerate(samples.slots) for slot in slots]
        self.paths, self.config, self._groups = [str(p) for p in samples.paths], config, {}

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, position: int) -> tuple[int, dict[str, np.ndarray]]:
        store, slot = self.locations[position]
        if store not in self._groups:  # opened lazily, once per worker
            self._groups[store] = zarr.open_group(self.paths[store], mode="r")
        arrays = read_samples(self._groups[store], np.array([slot]), self.config)
        return position, {k: v[0] for k, v in arrays.items()}


def _collate(items: list[tuple[int, dict[str, np.ndarray]]]) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    positions = np.array([p for p, _ in items])
    return positions, {k: torch.from_numpy(np.stack([d[k] for _, d in items])) for k in FEATURE_ARRAYS}


class StreamingSource:
    """Samples streamed from the stores through a DataLoader: workers read and
    collate, memory is pinned on CUDA, copies overlap compute."""

    def __init__(self, samples: StoreSamples, config: DataConfig, device: torch.device):
        self.dataset, self.config, self.device, self.graph = _SampleDataset(samples, config), config, device, samples.graph

    def batches(self, positions: np.ndarray, batch_size: int, generator: torch.Generator | None = None
                ) -> Iterator[tuple[np.ndarray, StagBatch]]:
        order = positions[torch.randperm(len(positions), generator=generator).numpy()] if generator else positions
        chunks = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
        workers = self.config.num_workers
        loader = DataLoader(self.dataset, batch_sampler=chunks, collate_fn=_collate, num_workers=workers,
                            pin_memory=self.device.type == "cuda",
                            prefetch_factor=self.config.prefetch_factor if workers else None,
                            persistent_workers=False,
                            generator=torch.Generator())  # its own RNG: the global one (dropout, init) stays untouched
        for pos, arrays in loader:
            arrays = {k: v.to(self.device, non_blocking=True) for k, v in arrays.items()}
            yield pos, _to_batch(arrays, self.graph)


# -- normalisation and augmentation (applied on the device, per batch) ----------
# channel axis of each field; statistics are per channel, over every other axis
CHANNEL_AXIS = {"flow": 2, "strain": None, "roi_patches": 3, "roi_stats": -1, "au_activation": -1, "edge_weight": None}


def _channels_last(x: torch.Tensor, axis: int | None) -> torch.Tensor:
    return x.reshape(-1, 1) if axis is None else x.movedim(axis, -1).flatten(0, -2)  # (M, C)


class Normaliser:
    """Per-channel z-score with statistics of the training fold only."""

    def __init__(self, mean: dict[str, torch.Tensor], std: dict[str, torch.Tensor]):
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, source, positions: np.ndarray, batch_size: int, min_std: float) -> "Normaliser":
        """Statistics over ``positions`` (the training fold); channels with std < min_std keep std 1."""
        sums: dict[str, torch.Tensor] = {}
        for _, batch in source.batches(positions, batch_size):
            for name, axis in CHANNEL_AXIS.items():
                x = _channels_last(getattr(batch, name).double(), axis)  # (M, C)
                acc = torch.stack([torch.full_like(x[0], x.shape[0]), x.sum(0), (x * x).sum(0)])  # (3, C)
                sums[name] = sums[name] + acc if name in sums else acc
        mean, std = {}, {}
        for name, (n, s1, s2) in sums.items():
            m = s1 / n.clamp(min=1)
            sd = (s2 / n.clamp(min=1) - m * m).clamp(min=0).sqrt()
            mean[name], std[name] = m.float(), torch.where(sd < min_std, torch.ones_like(sd), sd).float()
        return cls(mean, std)

    def __call__(self, b: StagBatch) -> StagBatch:
        out = {}
        for name, axis in CHANNEL_AXIS.items():
            x = getattr(b, name).float()
            shape = [1] * x.dim()
            if axis is not None:
                shape[axis] = -1
            out[name] = (x - self.mean[name].to(x.device).view(shape)) / self.std[name].to(x.device).view(shape)
        return StagBatch(**{**vars(b), **out})

    def state(self) -> dict[str, dict[str, list[float]]]:
        """Plain-python copy for checkpoints."""
        return {"mean": {k: v.tolist() for k, v in self.mean.items()}, "std": {k: v.tolist() for k, v in self.std.items()}}


def flip_horizontally(b: StagBatch, which: torch.Tensor, graph: GraphSpec) -> StagBatch:
    """Mirror the samples where ``which`` (B,) is True: fields flip along x, u
    (and mean u, cos direction) change sign, left and right ROIs, their edges
    and L/R AUs swap. Applied after normalisation, so signs flip about the
    training fold's mean (0 for flow in px; the best estimate of no-motion for
    per-image normalised flow)."""
    dev = b.flow.device
    roi_m, edge_m, au_m = (torch.as_tensor(a, device=dev) for a in (graph.roi_mirror, graph.edge_mirror, graph.au_mirror))
    flow = b.flow.flip(-1) * torch.tensor([-1.0, 1.0], device=dev).view(1, 1, 2, 1, 1)  # (B, K, 2, H, W)
    patches = b.roi_patches[:, :, roi_m].flip(-1) * torch.tensor([-1.0, 1.0], device=dev).view(1, 1, 1, 2, 1, 1)
    sign = torch.ones(b.roi_stats.shape[-1], device=dev)
    sign[list(FLIP_NEGATED_STATS)] = -1.0
    flipped = dict(flow=flow, strain=b.strain.flip(-1), roi_patches=patches, roi_stats=b.roi_stats[:, :, roi_m] * sign,
                   au_activation=b.au_activation[:, :, au_m], edge_weight=b.edge_weight[:, :, edge_m])
    out = {}
    for name, value in flipped.items():
        original = getattr(b, name)
        mask = which.view(-1, *([1] * (original.dim() - 1)))
        out[name] = torch.where(mask, value.to(original.dtype), original)
    return StagBatch(**{**vars(b), **out})


def make_source(samples: StoreSamples, config: DataConfig, device: torch.device) -> InMemorySource | StreamingSource:
    """In memory when the features fit ``keep_on_device_max_bytes``, streamed otherwise."""
    if samples.feature_bytes <= config.keep_on_device_max_bytes:
        return InMemorySource(samples, config, device)
    return StreamingSource(samples, config, device)
