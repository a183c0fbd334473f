"""Loader throughput and the trainer's data wait (issue 8, item 6).

For two stores on disk, both written by the real writer:

  composite  the MEGC 2019 composite, 442 samples, K = 1, 28 x 28 flow
  pipeline   a pipeline-shaped store (default PipelineConfig: K = 8, 224 px
             flow, 15 ROI patches) of N samples replicated from real demo-clip
             features (see benchmarks/_stores.py); by default N makes it the
             smallest store the trainer streams (features just above
             DataConfig.keep_on_device_max_bytes)

it measures samples per second of ``stag_model.data``:

  in_memory        InMemorySource: every sample read once (``load_s``), then batches
                   are gathered from resident tensors (a numpy row copy on the CPU) in
                   a background thread
  stream_w<N>      StreamingSource reading a whole batch per Zarr read, in a background
                   thread (N = 0) or in N persistent DataLoader worker processes
                   (one pass over every sample, after one warm-up pass so the page
                   cache holds the store: the figure is decode + collate cost, not disk)

and the data-wait fraction of training: STAG trains one LOSO fold for a few
epochs through ``stag_model.train.fit_fold`` with the source wrapped so that the
time the loop spends waiting for the next batch is separated from the time it
spends on the step itself (forward, backward, optimiser). Target: <= 5%, for
the source the trainer picks for that store (``trainer_uses_on``: in memory up
to keep_on_device_max_bytes, so the composite; streamed beyond it, with 0
workers on the CPU and 2 on a GPU machine); the other sources are measured
too, for comparison. The
wait for the first batch of each epoch is also reported apart: the trainer
draws every epoch's order up front (``epoch_orders``) and calls
``source.batches(orders[e], batch_size, upcoming=orders[e + 1])``, so a source
begins epoch e + 1 while the last step of epoch e runs; the normaliser's pass
before the first epoch announces that epoch the same way.

    python benchmarks/loader.py
    python benchmarks/loader.py --pipeline-samples 32 --stores composite --sources stream_w0 stream_w1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import LoadSampler, scratch_dir, table, write_results  # noqa: E402


class TimedSource:
    """Wraps a batch source; records time spent waiting for batches vs time the consumer
    holds each batch (the step). Training epochs are the calls that ask for the order the
    call before them announced (the trainer's pattern: the normaliser's pass announces
    ``orders[0]``, then ``batches(orders[e], b, upcoming=orders[e + 1])``, the last epoch
    without); other calls (the normaliser's pass, throughput passes) count apart."""

    def __init__(self, source):
        self.source = source
        self.wait_s = 0.0
        self.step_s = 0.0
        self.steps = 0
        self.samples = 0
        self.other_wait_s = 0.0
        self.epoch_start_waits: list[float] = []  # each training epoch's wait for its first batch
        self.epochs = 0  # training epochs: their order was announced by the call before them
        self._announced: np.ndarray | None = None

    def __getattr__(self, name):
        return getattr(self.source, name)

    def batches(self, positions, batch_size, generator=None, upcoming=None):
        announced, self._announced = self._announced, None if upcoming is None else np.array(upcoming)
        training = generator is None and announced is not None and np.array_equal(announced, positions)
        self.epochs += training
        inner = self.source.batches(positions, batch_size, generator, upcoming=upcoming)
        first = True
        while True:
            t = time.perf_counter()
            try:
                item = next(inner)
            except StopIteration:
                return
            waited = time.perf_counter() - t
            if training:
                self.wait_s += waited
                if first:
                    self.epoch_start_waits.append(waited)
                first = False
            else:
                self.other_wait_s += waited
            t = time.perf_counter()
            yield item
            if training:
                self.step_s += time.perf_counter() - t
                self.steps += 1
                self.samples += len(item[0])


def throughput(source, n: int, batch_size: int, passes: int = 1) -> float:
    """Samples per second over ``passes`` passes of every sample (best pass)."""
    positions = np.arange(n)
    best = float("inf")
    for _ in range(passes):
        t = time.perf_counter()
        count = 0
        for pos, batch in source.batches(positions, batch_size):
            count += len(pos)
            _ = batch.flow.sum()  # touch the data
        best = min(best, time.perf_counter() - t)
    return n / best


def parse_source(label: str) -> int | None:
    """Workers of a source label: 'in_memory' -> None, 'stream_w<N>' -> N."""
    if label == "in_memory":
        return None
    if label.startswith("stream_w") and label[len("stream_w"):].isdigit():
        return int(label[len("stream_w"):])
    raise argparse.ArgumentTypeError(f"source {label!r}: expected in_memory or stream_w<workers>")


def trainer_devices(label: str, feature_bytes: int) -> list[str]:
    """The devices on which ``stag-fit`` with default DataConfig reads a store of ``feature_bytes``
    through this source (``stag_model.data.make_source``, ``streaming.resolve_workers``): in memory up
    to ``keep_on_device_max_bytes``; beyond, streamed with 0 workers on the CPU and with
    ``AUTO_WORKERS`` on a GPU machine with more usable cores than that."""
    from schemas.model_config import DataConfig
    from stag_model.data import held_in_memory

    workers = parse_source(label)
    if held_in_memory(feature_bytes, DataConfig(scheme="any")):
        return ["cpu", "cuda"] if workers is None else []
    return (["cpu"] if workers == 0 else []) + (["cuda"] if workers == DataConfig.AUTO_WORKERS else [])


def smallest_streamed_count(per_sample_bytes: int) -> int:
    """Samples of the smallest store the trainer streams (features above keep_on_device_max_bytes)."""
    from schemas.model_config import DataConfig

    return DataConfig.model_fields["keep_on_device_max_bytes"].default // per_sample_bytes + 1


def measure_store(name: str, path: Path, scheme: str, batch_size: int, epochs: int, sources: list[str],
                  prefetch_factor: int | None = None, seed: int = 1) -> list[dict]:
    import torch

    from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
    from stag_model.data import InMemorySource, StreamingSource, open_samples
    from stag_model.protocols import Fold, GuardedLabels, make_folds
    from stag_model.train import fit_fold

    device = torch.device("cpu")
    rows = []
    # warm-up: the first fit in a process pays one-off costs (lazy imports, allocator, kernels)
    data = DataConfig(scheme=scheme, num_workers=0)
    samples = open_samples([path], data)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets, n_splits=5, seed=seed)
    warm = Fold("warm-up", folds[0].train[: 2 * batch_size], folds[0].test[:4])
    fit_fold(samples, InMemorySource(samples, data, device), warm, GuardedLabels(samples.labels, warm.train, "warm-up"),
             {"train": TrainConfig(epochs=1, batch_size=batch_size, device="cpu"), "model": ModelConfig(),
              "ststnet": StstnetConfig(), "data": data}, seed, device)
    prefetch = {} if prefetch_factor is None else {"prefetch_factor": prefetch_factor}
    for label in sources:
        workers = parse_source(label)
        data = DataConfig(scheme=scheme, num_workers=workers or 0, **prefetch)
        samples = open_samples([path], data)
        n = len(samples)
        t = time.perf_counter()
        source = InMemorySource(samples, data, device) if workers is None else StreamingSource(samples, data, device)
        load_s = time.perf_counter() - t
        if workers is not None:
            throughput(source, n, batch_size)  # warm-up: page cache, worker start paths
        sps = throughput(source, n, batch_size, passes=2)
        # data wait while training STAG on one LOSO fold
        folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets, n_splits=5, seed=seed)
        fold = folds[0]
        configs = {"train": TrainConfig(epochs=epochs, batch_size=batch_size, device="cpu"), "model": ModelConfig(),
                   "ststnet": StstnetConfig(), "data": data}
        timed = TimedSource(source)
        t = time.perf_counter()
        fit_fold(samples, timed, fold, GuardedLabels(samples.labels, fold.train, fold.name), configs, seed, device)
        fit_s = time.perf_counter() - t
        if hasattr(source, "close"):
            source.close()  # persistent workers of this variant stop before the next one is measured
        if timed.epochs != epochs:
            raise RuntimeError(f"{timed.epochs} of {epochs} epochs were announced (upcoming) by the call before them: "
                               "the trainer does not use the upcoming call pattern")
        wait_fraction = timed.wait_s / max(timed.wait_s + timed.step_s, 1e-12)
        starts = timed.epoch_start_waits
        steady_wait = timed.wait_s - sum(starts)
        rows.append({"store": name, "source": label, "samples": n, "load_s": load_s, "samples_per_s": sps,
                     "train_steps": timed.steps, "wait_s": timed.wait_s, "step_s": timed.step_s,
                     "train_samples_per_s": timed.samples / max(timed.step_s, 1e-12),
                     "data_wait_fraction": wait_fraction, "epoch_start_wait_s": sum(starts),
                     "first_epoch_start_wait_s": starts[0],
                     "read_ahead_epoch_start_wait_s": float(np.mean(starts[1:])),
                     "prefetch_factor": data.prefetch_factor,
                     "steady_data_wait_fraction": steady_wait / max(steady_wait + timed.step_s, 1e-12),
                     "wall_train_samples_per_s": timed.samples / max(timed.wait_s + timed.step_s, 1e-12),
                     "fold_fit_s": fit_s, "epochs": epochs,
                     "feature_mb_float32": samples.feature_bytes / 2**20,
                     "device": device.type, "trainer_uses_on": trainer_devices(label, samples.feature_bytes)})
        print(f"  {name} {label}: {sps:.0f} samples/s, data wait {wait_fraction:.1%} of {timed.steps} steps "
              f"({rows[-1]['steady_data_wait_fraction']:.1%} after each epoch's first batch; first batch "
              f"{rows[-1]['first_epoch_start_wait_s'] * 1e3:.1f} ms in epoch 1, "
              f"{rows[-1]['read_ahead_epoch_start_wait_s'] * 1e3:.1f} ms per later epoch), "
              f"step {timed.step_s:.2f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", nargs="*", default=["composite", "pipeline"], choices=["composite", "pipeline"])
    parser.add_argument("--pipeline-samples", type=int, default=0,
                        help="samples of the pipeline store (default 0: the smallest store the trainer streams, "
                        "just above DataConfig.keep_on_device_max_bytes)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2,
                        help="training epochs of the data-wait measurement (at least 2: the first epoch is reported "
                        "apart from the later ones)")
    parser.add_argument("--sources", nargs="*", default=["in_memory", "stream_w0", "stream_w2"],
                        help="in_memory and/or stream_w<N> (StreamingSource with N DataLoader workers)")
    parser.add_argument("--prefetch-factor", type=int, default=None,
                        help="DataConfig.prefetch_factor (default: its own default)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--name", default="loader")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is reported apart from the later ones")
    for label in args.sources:
        parse_source(label)

    import torch

    from benchmarks._stores import BENCH_SCHEME, composite_store, extract_demo_features, replicated_store

    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = scratch_dir("loader", args.scratch)
    rows, setup = [], {}
    with LoadSampler() as load:
        if "composite" in args.stores:
            path, setup["composite_import_s"] = composite_store()
            rows += measure_store("composite", path, "megc2019-3", args.batch_size, args.epochs, args.sources,
                                  args.prefetch_factor)
        if "pipeline" in args.stores:
            t = time.perf_counter()
            config, features = extract_demo_features({}, 2, scratch)
            count = args.pipeline_samples
            if count <= 0:
                from schemas.model_config import DataConfig
                from stag_model.data import open_samples

                probe = replicated_store(scratch / "probe.zarr", config, features, len(features))
                per_sample = open_samples([probe], DataConfig(scheme=BENCH_SCHEME)).feature_bytes // len(features)
                count = smallest_streamed_count(per_sample)
            path = replicated_store(scratch / "pipeline.zarr", config, features, count)
            setup["pipeline_store_build_s"] = time.perf_counter() - t
            rows += measure_store("pipeline", path, BENCH_SCHEME, args.batch_size, args.epochs, args.sources,
                                  args.prefetch_factor)
    print("\nLoader throughput and data wait (CPU)")
    print(table(rows, ["store", "source", "samples", "feature_mb_float32", "load_s", "samples_per_s", "train_steps",
                       "wait_s", "epoch_start_wait_s", "first_epoch_start_wait_s", "read_ahead_epoch_start_wait_s",
                       "step_s", "data_wait_fraction", "steady_data_wait_fraction",
                       "wall_train_samples_per_s"], "{:.3f}"))
    write_results(args.name, {"rows": rows, "setup": setup, "torch_threads": torch.get_num_threads(),
                              "scratch": str(scratch)}, load, notes=[
        "samples_per_s: best of 2 passes over every sample, batch size as given, after a warm-up pass for streaming",
        "data_wait_fraction: time waiting for the next batch / (wait + step) over the training epochs of one "
        "LOSO fold of STAG (fit_fold), source wrapped by benchmarks/loader.py TimedSource",
        "epoch_start_wait_s: the part of wait_s spent on the first batch of each training epoch; "
        "steady_data_wait_fraction leaves it out; first_epoch_start_wait_s: the first epoch's (never read ahead), "
        "read_ahead_epoch_start_wait_s: mean over the later epochs, whose first batches the source began reading "
        "during the epoch before (upcoming)",
        "wall_train_samples_per_s: training samples / (wait + step): what overlapping the reads costs the step shows "
        "here, not in the wait",
        "pipeline store: real demo-clip features (default PipelineConfig) committed N times by write_sample; "
        "by default N makes it the smallest store the trainer streams (just above keep_on_device_max_bytes)",
        "trainer_uses_on: the devices on which stag-fit with default DataConfig reads this store through this "
        "source (in memory up to keep_on_device_max_bytes; beyond, 0 workers on the CPU, AUTO_WORKERS on a GPU)",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
