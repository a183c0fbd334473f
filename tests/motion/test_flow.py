"""TV-L1 flow, optical strain and .flo I/O: synthetic properties and real references."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from schemas.motion_config import TVL1Config
from stag_features.extract.flow import (
    endpoint_error,
    make_tvl1,
    max_pyramid_scales,
    optical_strain,
    read_flo,
    solver_parameters,
    tvl1_flow,
    write_flo,
)


def smooth_texture(size: int, seed: int, sigma: float = 2.0) -> np.ndarray:
    """Periodic band-limited texture in [0, 255] (float64): exact sub-pixel shifts by FFT."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(size, size))
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    spectrum = np.fft.fft2(noise) * np.exp(-2 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    image = np.real(np.fft.ifft2(spectrum))
    return 255 * (image - image.min()) / (image.max() - image.min())


def fourier_shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """image translated by (dx, dy): out(x) = image(x - d), exact for periodic band-limited images."""
    size = image.shape[0]
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (fx * dx + fy * dy))))


def test_solver_takes_every_parameter_from_config():
    config = TVL1Config(tau=0.2, theta=0.4, scales=3, warps=2, epsilon=0.05, inner_iterations=11,
                       outer_iterations=7, scale_step=0.5, gamma=0.1, median_filtering=3, **{"lambda": 0.2})
    got = solver_parameters(make_tvl1(config))
    want = config.model_dump(by_alias=True, exclude={"opencv_threads", "initial_flow", "initial_dis_preset",
                                                     "backend", "device", "torch_threads"})  # not solver settings
    want["use_initial_flow"] = True  # initial_flow="dis" by default
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-6), name


@pytest.mark.parametrize("initial_flow", ["none", "dis"])
def test_synthetic_subpixel_translation_has_epe_below_0_1_px(initial_flow):
    first = smooth_texture(96, seed=1)
    dx, dy = 0.37, -0.61
    second = fourier_shift(first, dx, dy)
    flow = tvl1_flow(first.round().astype(np.uint8), second.round().astype(np.uint8),
                     TVL1Config(initial_flow=initial_flow))
    truth = np.stack([np.full(first.shape, dx), np.full(first.shape, dy)]).astype(np.float32)
    inner = np.zeros(first.shape, bool)
    inner[8:-8, 8:-8] = True  # TV-L1's border handling is not periodic
    epe = endpoint_error(flow, truth, inner)
    print(f"synthetic shift ({dx}, {dy}) px, initial flow {initial_flow}: EPE {epe:.4f} px")
    assert epe <= 0.1


def test_zero_motion_gives_near_zero_flow():
    image = smooth_texture(64, seed=2).astype(np.uint8)
    flow = tvl1_flow(image, image, TVL1Config())
    assert np.abs(flow).max() < 1e-3


def test_mismatched_sizes_and_dtypes_are_rejected():
    with pytest.raises(ValueError, match="differ in size"):
        tvl1_flow(np.zeros((20, 20), np.uint8), np.zeros((20, 21), np.uint8), TVL1Config())
    with pytest.raises(ValueError, match="uint8"):
        tvl1_flow(np.zeros((20, 20), np.float32), np.zeros((20, 20), np.float32), TVL1Config())


def test_strain_of_affine_flow_matches_formula():
    y, x = np.mgrid[0:32, 0:40].astype(np.float64)
    a, b, c, d = 0.03, -0.02, 0.05, -0.01
    flow = np.stack([a * x + b * y, c * x + d * y])
    expected = np.sqrt(a**2 + d**2 + 0.5 * (b + c) ** 2)
    np.testing.assert_allclose(optical_strain(flow), expected, rtol=1e-5)


def test_strain_is_zero_for_rigid_motion():
    y, x = np.mgrid[0:32, 0:32].astype(np.float64)
    angle = 0.01  # small rotation plus translation: no deformation
    flow = np.stack([-angle * y + 1.5, angle * x - 0.7])
    assert np.abs(optical_strain(flow)).max() < 1e-6
    batch = np.stack([flow, 2 * flow])  # works on (K, 2, H, W) too
    assert optical_strain(batch).shape == (2, 32, 32)


def test_flo_round_trip_and_bad_header(tmp_path):
    flow = np.random.default_rng(0).normal(size=(2, 5, 7)).astype(np.float32)
    path = tmp_path / "x.flo"
    write_flo(path, flow)
    np.testing.assert_array_equal(read_flo(path), flow)
    (tmp_path / "bad.flo").write_bytes(b"PIEH" + bytes(8))
    with pytest.raises(ValueError, match="bad.flo"):
        read_flo(tmp_path / "bad.flo")
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match="bytes"):
        read_flo(path)


def test_pyramid_depth_rule():
    assert max_pyramid_scales((436, 1024), 0.5) == 5  # 436 * 0.5**4 = 27 >= 16, 436 * 0.5**5 = 13.6 < 16
    assert max_pyramid_scales((16, 16), 0.5) == 1


# Tolerance for OpenCV vs the IPOL reference on real CASME II frames. The two
# implementations solve the same model but differ in pyramid (scale step 0.8 vs
# zoom 0.5), interpolation and stopping details; the data README measures a
# 0.07 px mean EPE on 001->002. We hold 0.12 px on every pair (room for
# platform-level numeric differences, still well under the reference's own
# motion on 005 and 010) and also require the EPE to be below 60% of the
# error of reporting zero flow, so a solver that returns nothing cannot pass.
CASME_TOLERANCE_PX = 0.12


@pytest.mark.parametrize("initial_flow", ["none", "dis"])
@pytest.mark.parametrize("target", ["002", "005", "010"])
def test_tvl1_matches_ipol_reference_on_casme2(shared_data, target, initial_flow):
    frames = shared_data / "casme2_frames"
    first = cv2.imread(str(frames / "001.jpg"), cv2.IMREAD_GRAYSCALE)
    second = cv2.imread(str(frames / f"{target}.jpg"), cv2.IMREAD_GRAYSCALE)
    reference = read_flo(frames / "ipol_tvl1" / f"001_{target}.flo")
    flow = tvl1_flow(first, second, TVL1Config(initial_flow=initial_flow))
    epe = endpoint_error(flow, reference)
    zero_flow_error = endpoint_error(np.zeros_like(reference), reference)
    print(f"CASME II 001->{target} (initial flow {initial_flow}): mean EPE vs IPOL {epe:.4f} px (zero-flow error {zero_flow_error:.4f} px)")
    assert epe < CASME_TOLERANCE_PX
    assert epe < 0.6 * zero_flow_error


def test_fast_preset_is_faster_and_close(shared_data):
    frames = shared_data / "casme2_frames"
    first = cv2.imread(str(frames / "001.jpg"), cv2.IMREAD_GRAYSCALE)
    second = cv2.imread(str(frames / "002.jpg"), cv2.IMREAD_GRAYSCALE)
    reference = read_flo(frames / "ipol_tvl1" / "001_002.flo")
    timings, errors = {}, {}
    for name, config in (("default", TVL1Config()), ("fast", TVL1Config.fast())):
        start = time.perf_counter()
        errors[name] = endpoint_error(tvl1_flow(first, second, config), reference)
        timings[name] = time.perf_counter() - start
    print(f"default {timings['default']:.2f} s EPE {errors['default']:.3f}; fast {timings['fast']:.2f} s "
          f"EPE {errors['fast']:.3f}")
    assert timings["fast"] < timings["default"] / 2
    assert errors["fast"] - errors["default"] < 0.1


# The data README gives the IPOL TV-L1 figure on this Sintel pair: about 1.1 px
# mean EPE outside occlusions. We accept up to 25% more.
SINTEL_IPOL_NOC_EPE = 1.1


@pytest.mark.slow
def test_tvl1_on_sintel_with_deep_pyramid(shared_data):
    sintel = shared_data / "sintel"
    first = cv2.imread(str(sintel / "frame_0002.png"))
    second = cv2.imread(str(sintel / "frame_0003.png"))
    truth = read_flo(sintel / "frame_0002.flo")
    occluded = cv2.imread(str(sintel / "masks" / "occlusions_0002.png"), cv2.IMREAD_GRAYSCALE) > 0
    invalid = cv2.imread(str(sintel / "masks" / "invalid_0002.png"), cv2.IMREAD_GRAYSCALE) > 0
    scales = max_pyramid_scales(first.shape[:2], 0.5)
    flow = tvl1_flow(first, second, TVL1Config.ipol_like(scales))
    noc = endpoint_error(flow, truth, ~occluded & ~invalid)
    overall = endpoint_error(flow, truth, ~invalid)
    print(f"Sintel ({scales} scales, zoom 0.5): EPE outside occlusions {noc:.3f} px, overall {overall:.3f} px "
          f"(IPOL ~{SINTEL_IPOL_NOC_EPE} / ~1.6)")
    assert noc <= 1.25 * SINTEL_IPOL_NOC_EPE


@pytest.mark.slow
def test_tvl1_recovers_synthetic_expression_field_and_fast_preset_cost():
    """Onset -> apex of synthetic micro-expressions (known dense displacement,
    0.8-2.5 px peaks, sensor noise, lighting drift): EPE where the skin moves
    must be under 30% of the zero-flow error (measured ~19%); the fast preset
    may add at most 0.05 px (measured ~0.01-0.03 px) and must be 3x faster."""
    from stag_features.adapters.synthetic_clips import make_dataset
    from stag_features.extract.motion import face_mask

    results = {"default": [], "fast": []}
    for clip in make_dataset(n_subjects=1, clips_per_emotion=1, seed=3):
        truth = clip.displacement[clip.apex]
        expression = truth - clip.head_shift[clip.apex][:, None, None]
        moving = face_mask(clip.landmarks_onset, truth.shape[1:], 0.0) & (np.hypot(*expression) > 0.2)
        for name, config in (("default", TVL1Config()), ("fast", TVL1Config.fast())):
            start = time.perf_counter()
            flow = tvl1_flow(clip.frames[clip.onset], clip.frames[clip.apex], config)
            seconds = time.perf_counter() - start
            results[name].append((endpoint_error(flow, truth, moving),
                                  endpoint_error(np.zeros_like(truth), truth, moving), seconds))
    default, fast = np.mean(results["default"], axis=0), np.mean(results["fast"], axis=0)
    print(f"synthetic apex flow: EPE default {default[0]:.3f} px ({default[2]:.2f} s), fast {fast[0]:.3f} px "
          f"({fast[2]:.2f} s), zero-flow error {default[1]:.3f} px")
    assert default[0] < 0.3 * default[1]
    assert fast[0] - default[0] <= 0.05
    assert fast[2] * 3 < default[2]
