"""Dense optical flow onset -> frame with Dual TV-L1, optical strain,
end-point error and a Middlebury ``.flo`` reader.

TV-L1 runs on the configured backend (``TVL1Config.backend``): OpenCV's
``cv2.optflow`` solver one pair at a time, or the same algorithm in torch
(``stag_features.extract.tvl1_torch``) with all the pairs of a call in one
batch, on ``TVL1Config.device``. The initial DIS flow (``initial_flow: dis``)
is OpenCV's on the CPU for both.

Flow arrays here are (2, H, W) float32, channel 0 = u (x, right), channel 1 =
v (y, down), in pixels, such that ``frame[y + v, x + u] ~ onset[y, x]``.

Threads: ``configure_opencv_threads`` sets ``cv2.setNumThreads`` to the
config's value (default 1) once per process. TV-L1 in OpenCV gains little from
threads; on a shared machine extra threads only oversubscribe the cores, so
parallelism comes from running one process per core instead. The torch backend
on the CPU runs on ``TVL1Config.torch_threads`` threads (default 1) likewise.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from schemas.motion_config import TVL1Config

FLO_MAGIC = 202021.25  # Middlebury .flo header tag
_configured_pid: int | None = None


def configure_opencv_threads(config: TVL1Config) -> None:
    """Set OpenCV's thread count for this process (once per process id)."""
    global _configured_pid
    if _configured_pid != os.getpid():
        cv2.setNumThreads(config.opencv_threads)
        _configured_pid = os.getpid()


def make_tvl1(config: TVL1Config) -> cv2.optflow.DualTVL1OpticalFlow:
    """A Dual TV-L1 solver with every parameter taken from the config."""
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=config.tau,
        lambda_=config.lambda_,
        theta=config.theta,
        nscales=config.scales,
        warps=config.warps,
        epsilon=config.epsilon,
        innnerIterations=config.inner_iterations,  # sic: OpenCV's keyword spelling
        outerIterations=config.outer_iterations,
        scaleStep=config.scale_step,
        gamma=config.gamma,
        medianFiltering=config.median_filtering,
        useInitialFlow=config.initial_flow != "none",
    )


def solver_parameters(solver: cv2.optflow.DualTVL1OpticalFlow) -> dict[str, float]:
    """The parameters a solver actually runs with, read back from OpenCV (for provenance)."""
    return {
        "tau": solver.getTau(),
        "lambda": solver.getLambda(),
        "theta": solver.getTheta(),
        "scales": solver.getScalesNumber(),
        "warps": solver.getWarpingsNumber(),
        "epsilon": solver.getEpsilon(),
        "inner_iterations": solver.getInnerIterations(),
        "outer_iterations": solver.getOuterIterations(),
        "scale_step": solver.getScaleStep(),
        "gamma": solver.getGamma(),
        "median_filtering": solver.getMedianFiltering(),
        "use_initial_flow": bool(solver.getUseInitialFlow()),
    }


DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _as_gray(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected a uint8 image, got {image.dtype}")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim != 2:
        raise ValueError(f"{name}: expected a (H, W) or (H, W, 3) image, got shape {image.shape}")
    return np.ascontiguousarray(image)


def tvl1_flow(first: np.ndarray, second: np.ndarray, config: TVL1Config,
              solver: cv2.optflow.DualTVL1OpticalFlow | None = None) -> np.ndarray:
    """TV-L1 flow from ``first`` to ``second`` (grayscale or BGR), (2, H, W) float32.

    Solves  min_u  sum |grad u| + lambda * |I1(x + u) - I0(x)|  (Zach, Pock,
    Bischof 2007; Sanchez et al. 2013) with the dual scheme of the configured
    backend, started from zero or (``initial_flow="dis"``) from OpenCV's DIS
    flow. ``solver`` (OpenCV backend only) reuses a ``make_tvl1`` solver.
    """
    a, b = _as_gray(first, "first"), _as_gray(second, "second")
    if a.shape != b.shape:
        raise ValueError(f"tvl1_flow: images differ in size: {a.shape} vs {b.shape}")
    configure_opencv_threads(config)
    if config.backend == "torch":
        return _torch_flows(a[None], b[None], config)[0]
    solver = solver or make_tvl1(config)
    initial = None
    if config.initial_flow == "dis":
        initial = cv2.DISOpticalFlow_create(DIS_PRESETS[config.initial_dis_preset]).calc(a, b, None)
    flow = solver.calc(a, b, initial)  # (H, W, 2)
    return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


def initial_flows(firsts: np.ndarray, seconds: np.ndarray, config: TVL1Config) -> np.ndarray | None:
    """The flow TV-L1 starts from for each pair of (B, H, W) uint8 images: (B, 2, H, W) float32 DIS
    flow (OpenCV, CPU) when ``initial_flow="dis"``, None when it starts from zero."""
    if config.initial_flow == "none":
        return None
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[config.initial_dis_preset])
    return np.stack([dis.calc(a, b, None).transpose(2, 0, 1) for a, b in zip(firsts, seconds)]).astype(np.float32)


def _torch_flows(firsts: np.ndarray, seconds: np.ndarray, config: TVL1Config) -> np.ndarray:
    """(B, H, W) uint8 pairs -> (B, 2, H, W) float32 flow, in one call of the torch backend."""
    from stag_features.extract.tvl1_torch import resolve_device, torch_threads, tvl1_torch

    device = resolve_device(config.device)
    initial = initial_flows(firsts, seconds, config)
    with torch_threads(config.torch_threads if device.type == "cpu" else 0):
        return tvl1_torch(firsts, seconds, config, initial, device).cpu().numpy()


def tvl1_flow_pairs(firsts: Sequence[np.ndarray], seconds: Sequence[np.ndarray], config: TVL1Config) -> np.ndarray:
    """TV-L1 flow from each ``firsts[i]`` to ``seconds[i]`` (B images each, grayscale or BGR, all one
    size): (B, 2, H, W) float32. The torch backend computes the B pairs in one batched call (pairs of
    one clip or of several); OpenCV's solves them one after another."""
    if len(firsts) != len(seconds):
        raise ValueError(f"tvl1_flow_pairs: {len(firsts)} first images but {len(seconds)} second images")
    a = np.stack([_as_gray(x, f"firsts[{i}]") for i, x in enumerate(firsts)]) if len(firsts) else None
    b = np.stack([_as_gray(x, f"seconds[{i}]") for i, x in enumerate(seconds)]) if len(seconds) else None
    if a is None or b is None:
        raise ValueError("tvl1_flow_pairs: no pairs given")
    if a.shape != b.shape:
        raise ValueError(f"tvl1_flow_pairs: images differ in size: {a.shape[1:]} vs {b.shape[1:]}")
    configure_opencv_threads(config)
    if config.backend == "torch":
        return _torch_flows(a, b, config)
    solver = make_tvl1(config)
    return np.stack([tvl1_flow(x, y, config, solver) for x, y in zip(a, b)])


def tvl1_flows_from_onset(onset: np.ndarray, frames: np.ndarray, config: TVL1Config) -> np.ndarray:
    """TV-L1 flow from ``onset`` to each of ``frames`` (K, H, W[, 3]): (K, 2, H, W) float32; with the
    torch backend the K pairs are one batched call."""
    if len(frames) == 0:
        return np.empty((0, 2, *onset.shape[:2]), dtype=np.float32)
    return tvl1_flow_pairs([onset] * len(frames), frames, config)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude of a (..., 2, H, W) flow, (..., H, W) float32.

    With the infinitesimal strain tensor
        e = 1/2 (grad u + grad u^T) = [[du/dx, 1/2 (du/dy + dv/dx)],
                                       [1/2 (du/dy + dv/dx), dv/dy]]
    the strain magnitude is
        eps = sqrt( (du/dx)^2 + (dv/dy)^2 + 1/2 (du/dy + dv/dx)^2 )
    (Shreve et al. 2011; the third term counts the two equal off-diagonal
    entries, each squared). Derivatives are central differences
    (``numpy.gradient``, one-sided at the border), in px per px.
    """
    flow = np.asarray(flow, dtype=np.float32)
    u, v = flow[..., 0, :, :], flow[..., 1, :, :]
    du_dy, du_dx = np.gradient(u, axis=(-2, -1))
    dv_dy, dv_dx = np.gradient(v, axis=(-2, -1))
    shear = du_dy + dv_dx
    return np.sqrt(du_dx**2 + dv_dy**2 + 0.5 * shear**2).astype(np.float32)


def endpoint_error(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean end-point error sqrt((u - u*)^2 + (v - v*)^2) over ``mask`` (all pixels when None).

    Both flows are (2, H, W).
    """
    if estimate.shape != truth.shape:
        raise ValueError(f"endpoint_error: shapes differ: {estimate.shape} vs {truth.shape}")
    err = np.sqrt(((np.asarray(estimate, np.float64) - truth) ** 2).sum(axis=0))
    if mask is not None:
        if mask.shape != err.shape or not mask.any():
            raise ValueError(f"endpoint_error: mask shape {mask.shape} vs {err.shape}, or mask empty")
        err = err[mask]
    return float(err.mean())


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file as (2, H, W) float32.

    Format: float32 tag 202021.25, int32 width, int32 height, then H*W*2
    float32 (u, v interleaved, row-major), little-endian.
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 12 or np.frombuffer(raw[:4], "<f4")[0] != FLO_MAGIC:
        raise ValueError(f"{path}: not a Middlebury .flo file (bad header tag)")
    width, height = (int(x) for x in np.frombuffer(raw[4:12], "<i4"))
    expected = 12 + 8 * width * height
    if width <= 0 or height <= 0 or len(raw) != expected:
        raise ValueError(f"{path}: header says {width}x{height} ({expected} bytes) but file has {len(raw)} bytes")
    data = np.frombuffer(raw[12:], "<f4").reshape(height, width, 2)
    return np.ascontiguousarray(data.transpose(2, 0, 1), dtype=np.float32)


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write a (2, H, W) flow as a Middlebury ``.flo`` file (inverse of ``read_flo``)."""
    flow = np.asarray(flow, dtype="<f4")
    _, height, width = flow.shape
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    Path(path).write_bytes(header + np.ascontiguousarray(flow.transpose(1, 2, 0)).tobytes())


def max_pyramid_scales(shape: tuple[int, int], scale_step: float, min_side: int = 16) -> int:
    """How many pyramid levels an image allows at a zoom factor before its
    smaller side drops below ``min_side`` px (the IPOL program's rule uses 16)."""
    side = min(shape)
    levels = 1
    while side * scale_step**levels >= min_side:
        levels += 1
    return levels
