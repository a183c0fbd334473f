"""The torch TV-L1 backend: its steps against OpenCV's, its flow against OpenCV's and the IPOL
reference on real CASME II frames, a known sub-pixel shift, batching, and the store's refusal of a
store built with the other backend."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from schemas.motion_config import TVL1Config
from schemas.pipeline_config import PipelineConfig
from schemas.store_spec import StoreLayout
from stag_features.extract import tvl1_torch as tt
from stag_features.extract.flow import (
    endpoint_error,
    initial_flows,
    read_flo,
    tvl1_flow,
    tvl1_flow_pairs,
    tvl1_flows_from_onset,
)

TORCH = {"backend": "torch", "device": "cpu"}


def smooth_texture(size: int, seed: int, sigma: float = 2.0) -> np.ndarray:
    """Periodic band-limited texture in [0, 255] (float64): exact sub-pixel shifts by FFT."""
    noise = np.random.default_rng(seed).normal(size=(size, size))
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    image = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-2 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))))
    return 255 * (image - image.min()) / (image.max() - image.min())


def fourier_shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` translated by (dx, dy): out(x) = image(x - d), exact for periodic band-limited images."""
    fy, fx = np.meshgrid(np.fft.fftfreq(image.shape[0]), np.fft.fftfreq(image.shape[1]), indexing="ij")
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (fx * dx + fy * dy))))


def shifted_pair(size: int, seed: int, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    first = smooth_texture(size, seed)
    return first.round().astype(np.uint8), fourier_shift(first, dx, dy).round().astype(np.uint8)


# -- the steps, one by one, against OpenCV's ---------------------------------------------------


def test_pyramid_resize_matches_opencv():
    image = np.random.default_rng(0).uniform(0, 255, (61, 73)).astype(np.float32)
    down = cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    ours = tt.resize_linear(torch.from_numpy(image), down.shape, (0.8, 0.8)).numpy()
    np.testing.assert_allclose(ours, down, atol=1e-3)
    up = cv2.resize(down, (73, 61), interpolation=cv2.INTER_LINEAR)
    ours = tt.resize_linear(torch.from_numpy(down), (61, 73), (61 / down.shape[0], 73 / down.shape[1])).numpy()
    np.testing.assert_allclose(ours, up, atol=1e-3)
    assert tt.level_sizes(224, 224, TVL1Config()) == [(224, 224), (179, 179), (143, 143), (114, 114), (91, 91)]
    assert tt.level_sizes(40, 30, TVL1Config()) == [(40, 30), (32, 24), (26, 19)]  # next: 15 px wide


def test_bicubic_warp_matches_opencv_remap_including_the_border():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.uniform(0, 255, (40, 50)).astype(np.float32), (0, 0), 1.5)
    flow = rng.normal(0, 1.5, (2, 40, 50)).astype(np.float32)
    ys, xs = np.mgrid[0:40, 0:50].astype(np.float32)
    reference = cv2.remap(image, xs + flow[0], ys + flow[1], cv2.INTER_CUBIC)  # constant border 0
    ours = tt.warp_bicubic(torch.from_numpy(image)[None, None], torch.from_numpy(flow)[None])[0, 0].numpy()
    np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_median_network_is_the_median_and_matches_opencv():
    u = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 2, 23, 31)).astype(np.float32))
    for size in (3, 5, 7):
        windows = torch.nn.functional.unfold(torch.nn.functional.pad(u, (size // 2,) * 4, mode="replicate"), size)
        expected = windows.view(2, 2, size * size, 23, 31).median(dim=2).values
        assert torch.equal(tt.median_filter(u, size), expected), size
    for size in (3, 5):  # OpenCV filters float images with these sizes only
        np.testing.assert_array_equal(tt.median_filter(u, size)[1, 0].numpy(), cv2.medianBlur(u[1, 0].numpy(), size))


def test_divergence_is_minus_the_adjoint_of_the_forward_gradient():
    rng = np.random.default_rng(3)
    u = torch.from_numpy(rng.normal(size=(1, 2, 9, 11)))
    p = torch.from_numpy(rng.normal(size=(1, 2, 2, 9, 11)))
    p[:, :, 0, :, -1], p[:, :, 1, -1, :] = 0, 0  # as in the solver: the forward gradient is 0 there, so p stays 0
    assert float((tt.forward_gradient(u) * p).sum()) == pytest.approx(-float((u * tt.divergence(p)).sum()), rel=1e-12)
    ramp = torch.arange(11.0).repeat(9, 1)[None, None]
    dx, dy = tt.centred_gradient(ramp)
    assert torch.all(dx[..., 1:-1] == 1) and torch.all(dx[..., [0, -1]] == 0.5) and torch.all(dy == 0)


# -- the flow -----------------------------------------------------------------------------------


@pytest.mark.parametrize("initial_flow", ["none", "dis"])
def test_synthetic_subpixel_shift_within_0_05_px_and_close_to_opencv(initial_flow):
    dx, dy = 0.37, -0.61
    first, second = shifted_pair(96, 1, dx, dy)
    config = TVL1Config(initial_flow=initial_flow, **TORCH)
    flow = tvl1_flow(first, second, config)
    opencv = tvl1_flow(first, second, config.model_copy(update={"backend": "opencv"}))
    truth = np.stack([np.full(first.shape, dx), np.full(first.shape, dy)]).astype(np.float32)
    inner = np.zeros(first.shape, bool)
    inner[8:-8, 8:-8] = True  # TV-L1's border handling is not periodic
    epe = endpoint_error(flow, truth, inner)
    apart = endpoint_error(flow, opencv, inner)
    print(f"synthetic shift ({dx}, {dy}), initial flow {initial_flow}: torch EPE {epe:.4f} px, OpenCV "
          f"{endpoint_error(opencv, truth, inner):.4f} px, torch vs OpenCV {apart:.4f} px")
    assert epe <= 0.05
    assert apart <= 0.01  # measured 0.002-0.003 px


def test_a_batch_gives_the_flows_of_its_pairs_one_by_one():
    """Pairs that stop at different iterations (no motion, small, large, another texture) in one batch,
    and the onset -> frames call of the ingest, give exactly the flows of single calls."""
    pairs = [shifted_pair(64, 4, 0.0, 0.0), shifted_pair(64, 4, 0.2, 0.1), shifted_pair(64, 4, 2.5, -1.5),
             shifted_pair(64, 5, -0.7, 0.4)]
    config = TVL1Config(**TORCH)
    batch = tvl1_flow_pairs([a for a, _ in pairs], [b for _, b in pairs], config)
    single = np.stack([tvl1_flow(a, b, config) for a, b in pairs])
    assert batch.shape == (4, 2, 64, 64)
    np.testing.assert_array_equal(batch, single)
    assert np.abs(batch[0]).max() < 1e-3 and abs(float(batch[2, 0, 8:-8, 8:-8].mean()) - 2.5) < 0.1
    firsts, seconds = np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])
    masked = tt.tvl1_torch(firsts, seconds, config, initial_flows(firsts, seconds, config),
                           check_every=tt.CUDA_CHECK_EVERY)  # CUDA's way: stopped pairs masked between looks
    np.testing.assert_allclose(masked.numpy(), batch, atol=1e-6)
    onset, frames = pairs[1][0], np.stack([b for _, b in pairs[:3]])
    np.testing.assert_array_equal(tvl1_flows_from_onset(onset, frames, config), single[:3])
    assert tvl1_flows_from_onset(onset, frames[:0], config).shape == (0, 2, 64, 64)


def test_bad_inputs_and_settings_are_refused_naming_them():
    image = np.zeros((20, 20), np.uint8)
    with pytest.raises(ValueError, match="float32"):
        tt.tvl1_torch(np.zeros((1, 20, 20), np.float32), np.zeros((1, 20, 20), np.float32), TVL1Config())
    with pytest.raises(ValueError, match="differ"):
        tvl1_flow_pairs([image], [np.zeros((20, 21), np.uint8)], TVL1Config(**TORCH))
    with pytest.raises(ValueError, match="initial flow: expected shape"):
        tt.tvl1_torch(image[None], image[None], TVL1Config(), np.zeros((1, 2, 20, 19), np.float32))
    with pytest.raises(ValueError, match="median_filtering must be odd .*got 4"):
        tvl1_flow(image, image, TVL1Config(median_filtering=4, **TORCH))
    if torch.cuda.is_available():
        assert tt.resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="tvl1.device is 'cuda' but torch .* sees no CUDA device"):
            tvl1_flow(image, image, TVL1Config(backend="torch", device="cuda"))
        assert tt.resolve_device("auto").type == "cpu"


def test_torch_threads_are_set_for_the_call_and_restored():
    before = torch.get_num_threads()
    with tt.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with tt.torch_threads(0):
        assert torch.get_num_threads() == before


# -- real CASME II frames: against OpenCV and against the IPOL reference -----------------------

# Pairs with an IPOL reference flow. The torch backend runs every pair in one batched call at the
# default parameters; OpenCV one pair at a time.
IPOL_PAIRS = ("001_002", "001_003", "001_005", "001_010", "002_001", "002_003")
# Mean EPE between the backends, per pair. Measured 0.0004-0.014 px (mean 0.004 px): the two agree to
# float noise step by step (1e-5 px after one warp), and the stopping test amplifies it (OpenCV moves
# by 0.015 px against itself when epsilon moves by 1%). OpenCV vs IPOL is 0.07-0.09 px.
BACKEND_TOLERANCE_PX = 0.02
# Against IPOL the torch backend may not do worse than OpenCV by more than this (measured: at most
# +0.0005 px, and better on two pairs).
IPOL_MARGIN_PX = 0.001


@pytest.fixture(scope="module")
def casme2_flows(shared_data):
    frames = shared_data / "casme2_frames"
    read = lambda name: cv2.imread(str(frames / f"{name}.jpg"), cv2.IMREAD_GRAYSCALE)  # noqa: E731
    firsts = [read(pair.split("_")[0]) for pair in IPOL_PAIRS]
    seconds = [read(pair.split("_")[1]) for pair in IPOL_PAIRS]
    torch_flows = tvl1_flow_pairs(firsts, seconds, TVL1Config(**TORCH))
    opencv_flows = tvl1_flow_pairs(firsts, seconds, TVL1Config())
    references = [read_flo(frames / "ipol_tvl1" / f"{pair}.flo") for pair in IPOL_PAIRS]
    return torch_flows, opencv_flows, references


@pytest.mark.slow
def test_torch_agrees_with_opencv_on_casme2(casme2_flows):
    torch_flows, opencv_flows, references = casme2_flows
    for pair, ours, theirs, reference in zip(IPOL_PAIRS, torch_flows, opencv_flows, references):
        epe = endpoint_error(ours, theirs)
        print(f"CASME II {pair}: torch vs OpenCV EPE {epe:.4f} px (flow magnitude "
              f"{np.hypot(*theirs).mean():.3f} px)")
        assert epe <= BACKEND_TOLERANCE_PX, pair


@pytest.mark.slow
def test_torch_is_no_worse_than_opencv_against_ipol(casme2_flows):
    torch_flows, opencv_flows, references = casme2_flows
    for pair, ours, theirs, reference in zip(IPOL_PAIRS, torch_flows, opencv_flows, references):
        ours_epe, theirs_epe = endpoint_error(ours, reference), endpoint_error(theirs, reference)
        zero_epe = endpoint_error(np.zeros_like(reference), reference)
        print(f"CASME II {pair} vs IPOL: torch {ours_epe:.4f} px, OpenCV {theirs_epe:.4f} px (zero flow {zero_epe:.4f})")
        assert ours_epe <= theirs_epe + IPOL_MARGIN_PX, pair
        assert ours_epe < 0.6 * zero_epe, pair


# -- provenance: the backend is part of the config hash ----------------------------------------


def test_a_store_built_with_one_backend_is_refused_by_a_run_with_the_other(tmp_path):
    from stag_features.store.identity import StoreIdentity, StoreMismatchError, with_recorded_hash
    from stag_features.store.writer import ensure_store

    layout = StoreLayout(frames=2, height=8, width=8, time=10, patch=4, roi_names=("brow", "mouth"),
                         au_names=("AU1", "AU12"), edges=((0, 1),), class_schemes={"demo": ("a", "b")})

    def identity(config: PipelineConfig) -> StoreIdentity:
        return StoreIdentity(dataset="tiny", producer="pipeline", config=config.provenance(),
                             config_hash=config.config_hash(), layout=layout, store_config=config.store,
                             flow_units="px")

    opencv = PipelineConfig()
    on_gpu = opencv.with_overrides(tvl1={"backend": "torch", "device": "cuda", "torch_threads": 4})
    on_cpu = opencv.with_overrides(tvl1={"backend": "torch", "device": "cpu"})
    assert opencv.provenance()["tvl1"]["backend"] == "opencv"
    assert "device" not in on_gpu.provenance()["tvl1"] and on_gpu.config_hash() == on_cpu.config_hash()
    assert on_cpu.config_hash() != opencv.config_hash()

    store = tmp_path / "opencv.zarr"
    assert ensure_store(store, identity(opencv)) == "created"
    with pytest.raises(StoreMismatchError, match=r'tvl1\.backend: "opencv" -> "torch"'):
        ensure_store(store, identity(on_cpu))
    store = tmp_path / "torch.zarr"
    assert ensure_store(store, identity(on_gpu)) == "created"
    assert ensure_store(store, identity(on_cpu)) == "opened"  # the device is where it runs, not what it computes
    with pytest.raises(StoreMismatchError, match=r'tvl1\.backend: "torch" -> "opencv"'):
        ensure_store(store, identity(opencv))

    # a store written before the field existed was computed by OpenCV: an OpenCV run opens it under its own
    # recorded hash (as an ingest does, stag_features.ingest.steps), a torch run is refused
    before = opencv.provenance()
    del before["tvl1"]["backend"]
    digest = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    store = tmp_path / "before.zarr"
    ensure_store(store, replace(identity(opencv), config=before, config_hash=digest))
    assert with_recorded_hash(store, identity(opencv)).config_hash == digest
    assert ensure_store(store, with_recorded_hash(store, identity(opencv))) == "opened"
    with pytest.raises(StoreMismatchError, match=r'tvl1\.backend: "<absent>" -> "torch"'):
        ensure_store(store, with_recorded_hash(store, identity(on_cpu)))
