"""Store -> tensors: committed, labelled samples of one or more feature stores.

Two paths give the trainer the same `StagBatch`es:

- `InMemorySource`: a small store is read once and kept on the device; a batch
  is gathered from resident tensors (on the CPU in a background thread, ahead
  of the step).
- `StreamingSource`: a large store is read a whole batch at a time (one read per
  array, `stag_model.streaming.read_rows`) in DataLoader workers that persist
  across epochs, or with 0 workers in a background thread; ``prefetch_factor``
  batches ahead; on CUDA pinned and copied with ``non_blocking=True``.

Both read through `read_samples`, so the two paths cannot disagree. Told the
order of the next pass (``upcoming``), both begin it while the last batch of the
current pass is in use, so an epoch's first batch is ready too. Stores without
ROI patches (the precomputed 28 x 28 composite) get a g x g grid of flow cells
as ROI nodes (`grid_rois`). ROI statistics' direction (radians) is replaced by
(cos, sin) so that a horizontal flip is a sign change.
"""
from __future__ import annotations

import re
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import get_worker_info

from schemas.model_config import DataConfig
from schemas.store_spec import AU_TRUTH, FEATURE_ARRAYS, ROI_STAT_NAMES, SAMPLE_ID, SOURCE_DATASET, SUBJECT
from stag_features.store import StoreReader, open_stores
from stag_features.store.rows import float32_empty
from stag_model.model import StagBatch
from stag_model.streaming import BatchLoader, Passes, SharedArena, as_tensor, in_background, pinned, resolve_workers

# roi_stats as the model sees them: the store's dominant direction (rad) becomes (cos, sin) at read time
DIRECTION_STAT = ROI_STAT_NAMES.index("dominant_direction")
STAT_NAMES = (*ROI_STAT_NAMES[:DIRECTION_STAT], "direction_cos", "direction_sin", *ROI_STAT_NAMES[DIRECTION_STAT + 1:])
# mean u and cos(direction) change sign under a horizontal flip
FLIP_NEGATED_STATS = (STAT_NAMES.index("mean_u"), STAT_NAMES.index("direction_cos"))


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


def read_samples(reader: StoreReader, slots: np.ndarray, config: DataConfig,
                 empty: Callable = float32_empty, images: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Feature arrays of the given slots (in the order given), float32, direction as (cos, sin),
    grid ROIs when the store has none, and the image arrays ``images`` a model reads (each (N, C, S, S):
    a grey (N, S, S) array such as ``apex_face`` gets its channel axis). ``empty(shape)`` allocates the
    results read from the store."""
    out = {name: reader.read(name, slots, empty) for name in FEATURE_ARRAYS}
    for name in images:
        image = reader.read(name, slots, empty)
        out[name] = image[:, None] if image.ndim == 3 else image  # (N, C, S, S)
    if out["roi_patches"].shape[2] == 0:
        out["roi_patches"], out["roi_stats"] = grid_roi_features(out["flow"], config.grid_rois)
        out["edge_weight"] = np.ones(out["flow"].shape[:2] + (len(grid_graph(config.grid_rois)[1]),), np.float32)
    stats = out["roi_stats"]
    out["roi_stats"] = empty((*stats.shape[:-1], len(STAT_NAMES)))  # (N, K, R, S + 1)
    out["roi_stats"][..., :DIRECTION_STAT] = stats[..., :DIRECTION_STAT]
    out["roi_stats"][..., DIRECTION_STAT] = np.cos(stats[..., DIRECTION_STAT])
    out["roi_stats"][..., DIRECTION_STAT + 1] = np.sin(stats[..., DIRECTION_STAT])
    out["roi_stats"][..., DIRECTION_STAT + 2:] = stats[..., DIRECTION_STAT + 1:]
    return out


@dataclass
class StoreSamples:
    """Identity, labels and graph of the samples a run uses (features are read by a source)."""

    readers: list[StoreReader]  # one per store, in the order given
    slots: list[np.ndarray]  # per store: slots of the used samples
    sample_ids: np.ndarray  # (N,) str
    subjects: np.ndarray  # (N,) str, prefixed by dataset when several stores are read
    datasets: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) int64
    au_truth: np.ndarray  # (N, A) int8
    class_names: tuple[str, ...]
    graph: GraphSpec
    frames: int
    feature_bytes: int  # float32 bytes of every feature array (and image array) of every sample
    images: tuple[str, ...] = ()  # image arrays read beside the features (a model's inputs; stag_model.registry)
    inputs: tuple = ()  # stag_model.registry.ResolvedInput of each input role of the model, substitutions named

    @property
    def paths(self) -> list[Path]:
        return [reader.path for reader in self.readers]

    def __len__(self) -> int:
        return len(self.labels)


def _store_graph(reader: StoreReader, config: DataConfig) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """(ROI names, AU names, edges (E, 2)) a store gives the model: a g x g grid of cells without ROIs."""
    meta = reader.metadata
    if not meta.roi_names:
        names, edges, _ = grid_graph(config.grid_rois)
        return names, meta.au_names, edges
    return meta.roi_names, meta.au_names, meta.edge_index


def sample_datasets(reader: StoreReader, slots: np.ndarray, dataset: str) -> np.ndarray:
    """(N,) the dataset of each sample: its ``source_dataset`` where the store mixes datasets (the MEGC
    2019 composite: casme2, samm, smic; then ``lodo`` holds each out in turn), else ``dataset``."""
    if SOURCE_DATASET in reader.metadata.layout.extra_arrays:
        return np.array([str(v) for v in reader.column(SOURCE_DATASET, slots).tolist()], dtype=str)
    return np.full(len(slots), dataset)


def open_samples(paths: list[str | Path], config: DataConfig) -> StoreSamples:
    """Committed samples labelled under ``config.scheme`` in every store."""
    parts, reference = [], None
    for reader in open_stores(paths):
        meta = reader.metadata
        keep, labels = reader.labelled(config.scheme)
        if keep.size == 0:
            raise ValueError(f"store {reader.path}: no committed sample carries a label of scheme {config.scheme!r}")
        roi_names, au_names, edges = _store_graph(reader, config)
        ident = (roi_names, au_names, edges.tolist(), meta.class_schemes[config.scheme])
        if reference is not None and ident != reference[1]:
            raise ValueError(f"store {reader.path} differs from {reference[0]} in ROIs, AUs, edges or the classes of "
                             f"{config.scheme!r}; only stores built with the same graph can be trained together")
        reference = reference or (reader.path, ident)
        khw = (meta.layout.frames, meta.layout.height, meta.layout.width)
        parts.append(dict(reader=reader, keep=keep, labels=labels, khw=khw, dataset=meta.dataset))
    if len({p["khw"] for p in parts}) > 1:
        raise ValueError("stores differ in frames or flow size: " + ", ".join(
            f"{p['reader'].path}: (K, H, W)={p['khw']}" for p in parts))
    roi_names, au_names, edges, class_names = reference[1]
    edge_index = np.array(edges, dtype=np.int64).reshape(-1, 2)
    roi_mirror = mirror_positions(roi_names)
    edge_mirror = (edge_mirror_positions(edge_index, roi_mirror, str(reference[0])) if config.flip_probability > 0
                   else np.arange(len(edge_index)))
    graph = GraphSpec(roi_names, au_names, edge_index, roi_mirror, edge_mirror, mirror_positions(au_names),
                      grid=not parts[0]["reader"].metadata.roi_names)
    several = len(parts) > 1
    names = [p["dataset"] for p in parts]
    for p in parts:  # two stores of one dataset name stay distinguishable (leave-one-dataset-out)
        if names.count(p["dataset"]) > 1:
            p["dataset"] = f"{p['dataset']}:{p['reader'].path.stem}"
    ids, subjects, datasets = [], [], []
    for p in parts:
        ids.append(p["reader"].column(SAMPLE_ID, p["keep"]))
        subj = p["reader"].column(SUBJECT, p["keep"])
        subjects.append(np.char.add(f"{p['dataset']}/", subj) if several else subj)
        datasets.append(sample_datasets(p["reader"], p["keep"], p["dataset"]))
    probe = read_samples(parts[0]["reader"], parts[0]["keep"][:1], config)
    n = sum(len(p["keep"]) for p in parts)
    return StoreSamples(
        readers=[p["reader"] for p in parts], slots=[p["keep"] for p in parts], sample_ids=np.concatenate(ids),
        subjects=np.concatenate(subjects), datasets=np.concatenate(datasets),
        labels=np.concatenate([p["labels"] for p in parts]),
        au_truth=np.concatenate([p["reader"].column(AU_TRUTH, p["keep"]).astype(np.int8) for p in parts]),
        class_names=class_names, graph=graph, frames=parts[0]["khw"][0],
        feature_bytes=n * sum(a.nbytes for a in probe.values()),
    )


def with_images(samples: StoreSamples, images: tuple[str, ...], inputs: tuple, config: DataConfig) -> StoreSamples:
    """``samples`` whose sources also read the image arrays ``images`` (every store must hold them), with
    the resolved model inputs ``inputs`` recorded; ``feature_bytes`` counts the images too."""
    for reader in samples.readers:
        missing = [name for name in images if name not in reader.metadata.layout.extra_arrays]
        if missing:
            raise ValueError(f"store {reader.path} lacks the image array(s) {missing}")
    probe = read_samples(samples.readers[0], samples.slots[0][:1], config, images=images)
    return replace(samples, images=tuple(images), inputs=tuple(inputs),
                   feature_bytes=len(samples) * sum(a.nbytes for a in probe.values()))


def _to_batch(arrays: dict[str, torch.Tensor], graph: GraphSpec) -> StagBatch:
    n, k = arrays["flow"].shape[:2]
    device = arrays["flow"].device
    return StagBatch(
        images={name: value for name, value in arrays.items() if name not in FEATURE_ARRAYS},
        flow=arrays["flow"], strain=arrays["strain"], frame_mask=torch.ones(n, k, dtype=torch.bool, device=device),
        roi_patches=arrays["roi_patches"], roi_stats=arrays["roi_stats"], au_activation=arrays["au_activation"],
        edge_weight=arrays["edge_weight"], edge_index=torch.as_tensor(graph.edge_index, device=device),
        roi_ids=torch.arange(len(graph.roi_names), device=device),
    )


class InMemorySource:
    """Every sample's features read once and kept on ``device``. On the CPU a
    batch is gathered by numpy (a row-wise memcpy, ~10x faster than torch's
    element-wise index kernel for rows of megabytes) in a background thread,
    ``prefetch_factor`` batches ahead of the step."""

    def __init__(self, samples: StoreSamples, config: DataConfig, device: torch.device):
        per_store = [read_samples(reader, slots, config, images=samples.images)
                     for reader, slots in zip(samples.readers, samples.slots)]
        self.arrays = {k: torch.from_numpy(np.concatenate([d[k] for d in per_store])).to(device)
                       for k in (*FEATURE_ARRAYS, *samples.images)}
        self.graph, self.device, self.prefetch = samples.graph, device, config.prefetch_factor
        self.passes = Passes(self._start, lead=self.prefetch if device.type == "cpu" else 0)  # CPU: a gathering thread

    def _gather(self, positions: np.ndarray) -> tuple[np.ndarray, StagBatch]:
        if self.device.type == "cpu":
            return positions, _to_batch({k: torch.from_numpy(v.numpy()[positions]) for k, v in self.arrays.items()},
                                        self.graph)
        index = torch.as_tensor(positions, device=self.device)
        return positions, _to_batch({k: v[index] for k, v in self.arrays.items()}, self.graph)

    def _start(self, chunks: list[np.ndarray]) -> Iterator[tuple[np.ndarray, StagBatch]]:
        gathered = (self._gather(c) for c in chunks)  # on CUDA the gather is an asynchronous kernel already
        return in_background(gathered, self.prefetch) if self.device.type == "cpu" else gathered

    def batches(self, positions: np.ndarray, batch_size: int, generator: torch.Generator | None = None,
                upcoming: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, StagBatch]]:
        """(positions, batch) pairs; shuffled when a generator is given. ``upcoming``: the positions
        (in order) the next call will ask for, gathered ahead (`stag_model.streaming.Passes`)."""
        return self.passes(positions, batch_size, generator, upcoming)


class _BatchReader:
    """Features of a batch of positions: per store, one read per array (a store's arrays
    are opened lazily, once per process); errors name the store. In a DataLoader
    worker a batch is made in one block of shared memory (sized by the batches
    before), so it reaches the trainer without a copy."""

    def __init__(self, samples: StoreSamples, config: DataConfig):
        self.readers, self.config, self.images = samples.readers, config, samples.images
        self.store_of = np.concatenate([np.full(len(s), i) for i, s in enumerate(samples.slots)])
        self.slot_of = np.concatenate(samples.slots)
        self.floats_per_sample = 0  # learnt from the batches read so far

    def __call__(self, positions: list[int]) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        positions = np.asarray(positions, dtype=np.int64)
        stores = self.store_of[positions]
        present = np.unique(stores).tolist()
        empty = SharedArena(len(positions) * self.floats_per_sample) if get_worker_info() else float32_empty
        one_store = len(present) == 1
        out: dict[str, np.ndarray] = {}
        for store in present:
            mine = stores == store
            try:
                arrays = read_samples(self.readers[store], self.slot_of[positions[mine]], self.config,
                                      empty if one_store else float32_empty, self.images)
            except Exception as error:
                raise RuntimeError(f"store {self.readers[store].path}: reading slots {self.slot_of[positions[mine]].tolist()} "
                                   f"failed: {type(error).__name__}: {error}") from error
            if one_store:  # already in batch order
                out = arrays
                break
            for name, value in arrays.items():
                out.setdefault(name, empty((len(positions), *value.shape[1:])))[mine] = value
        if isinstance(empty, SharedArena):
            self.floats_per_sample = max(self.floats_per_sample, -(-empty.requested // len(positions)))
        return positions, {name: as_tensor(out[name]) for name in (*FEATURE_ARRAYS, *self.images)}


class StreamingSource:
    """Batches streamed from the stores: each batch is read whole (one read per
    array), in ``num_workers`` DataLoader processes that persist across epochs, or
    with 0 workers in a background thread; ``prefetch_factor`` batches ahead (per
    worker). On CUDA, memory is pinned and copies are ``non_blocking``."""

    def __init__(self, samples: StoreSamples, config: DataConfig, device: torch.device):
        self.config, self.device, self.graph = config, device, samples.graph
        self.reader = _BatchReader(samples, config)
        self.workers = resolve_workers(config.num_workers, device)
        self.loader = (BatchLoader(self.reader, self.workers, config.prefetch_factor, device.type == "cuda")
                       if self.workers else None)
        # the next pass's reads begin when this one's are done: as many results before its end as are in flight
        self.passes = Passes(self._start, lead=self.loader.lead if self.loader is not None else config.prefetch_factor)

    def _start(self, chunks: list[np.ndarray]) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        if self.loader is not None:
            return self.loader.start(chunks)
        read = map(self.reader, chunks)
        return in_background(map(pinned, read) if self.device.type == "cuda" else read, self.config.prefetch_factor)

    def batches(self, positions: np.ndarray, batch_size: int, generator: torch.Generator | None = None,
                upcoming: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, StagBatch]]:
        """(positions, batch) pairs; shuffled when a generator is given. ``upcoming``: the positions
        (in order) the next call will ask for, read ahead (`stag_model.streaming.Passes`)."""
        with closing(self.passes(positions, batch_size, generator, upcoming)) as items:
            for pos, arrays in items:
                yield pos, _to_batch({k: v.to(self.device, non_blocking=True) for k, v in arrays.items()}, self.graph)

    def close(self) -> None:
        """Stop reads begun ahead and the worker processes now (else they stop with the source)."""
        self.passes.drop()
        if self.loader is not None:
            self.loader.close()


# -- normalisation (applied on the device, per batch; augmentation: stag_model.augment) --
# channel axis of each field; statistics are per channel, over every other axis
CHANNEL_AXIS = {"flow": 2, "strain": None, "roi_patches": 3, "roi_stats": -1, "au_activation": -1, "edge_weight": None}
IMAGE_CHANNEL_AXIS = 1  # images (B, C, S, S): statistics per channel


def _fields(b: StagBatch) -> dict[str, tuple[torch.Tensor, int | None]]:
    """Every normalised input of a batch by name, with its channel axis: the features, then the images."""
    return {**{name: (getattr(b, name), axis) for name, axis in CHANNEL_AXIS.items()},
            **{name: (image, IMAGE_CHANNEL_AXIS) for name, image in b.images.items()}}


def _channels_last(x: torch.Tensor, axis: int | None) -> torch.Tensor:
    return x.reshape(-1, 1) if axis is None else x.movedim(axis, -1).flatten(0, -2)  # (M, C)


class Normaliser:
    """Per-channel z-score with statistics of the training fold only."""

    def __init__(self, mean: dict[str, torch.Tensor], std: dict[str, torch.Tensor]):
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, source, positions: np.ndarray, batch_size: int, min_std: float,
            upcoming: np.ndarray | None = None) -> "Normaliser":
        """Statistics over ``positions`` (the training fold); channels with std < min_std keep std 1.
        ``upcoming``: the order of the pass that follows (the first epoch), read ahead during the last batch."""
        sums: dict[str, torch.Tensor] = {}
        for _, batch in source.batches(positions, batch_size, upcoming=upcoming):
            for name, (value, axis) in _fields(batch).items():
                x = _channels_last(value.double(), axis)  # (M, C)
                acc = torch.stack([torch.full_like(x[0], x.shape[0]), x.sum(0), (x * x).sum(0)])  # (3, C)
                sums[name] = sums[name] + acc if name in sums else acc
        mean, std = {}, {}
        for name, (n, s1, s2) in sums.items():
            m = s1 / n.clamp(min=1)
            sd = (s2 / n.clamp(min=1) - m * m).clamp(min=0).sqrt()
            mean[name], std[name] = m.float(), torch.where(sd < min_std, torch.ones_like(sd), sd).float()
        return cls(mean, std)

    def __call__(self, b: StagBatch) -> StagBatch:
        out, images = {}, {}
        for name, (value, axis) in _fields(b).items():
            x = value.float()
            shape = [1] * x.dim()
            if axis is not None:
                shape[axis] = -1
            normalised = (x - self.mean[name].to(x.device).view(shape)) / self.std[name].to(x.device).view(shape)
            (images if name in b.images else out)[name] = normalised
        return StagBatch(**{**vars(b), **out, "images": images})

    def state(self) -> dict[str, dict[str, list[float]]]:
        """Plain-python copy for checkpoints."""
        return {"mean": {k: v.tolist() for k, v in self.mean.items()}, "std": {k: v.tolist() for k, v in self.std.items()}}


def held_in_memory(feature_bytes: int, config: DataConfig) -> bool:
    """Whether `make_source` keeps features of ``feature_bytes`` (float32) in memory rather than streaming them."""
    return feature_bytes <= config.keep_on_device_max_bytes


def make_source(samples: StoreSamples, config: DataConfig, device: torch.device) -> InMemorySource | StreamingSource:
    """In memory when the features fit ``keep_on_device_max_bytes``, streamed otherwise."""
    if held_in_memory(samples.feature_bytes, config):
        return InMemorySource(samples, config, device)
    return StreamingSource(samples, config, device)
