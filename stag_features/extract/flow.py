"""Dense optical flow onset -> frame with OpenCV's Dual TV-L1, optical strain,
end-point error and a Middlebury ``.flo`` reader.

Flow arrays here are (2, H, W) float32, channel 0 = u (x, right), channel 1 =
v (y, down), in pixels, such that ``frame[y + v, x + u] ~ onset[y, x]``.

Threads: ``configure_opencv_threads`` sets ``cv2.setNumThreads`` to the
config's value (default 1) once per process. TV-L1 in OpenCV gains little from
threads; on a shared machine extra threads only oversubscribe the cores, so
parallelism comes from running one process per core instead.
"""
from __future__ import annotations

import os
from pathlib import Path

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
    Bischof 2007; Sanchez et al. 2013) with OpenCV's dual scheme, started from
    zero or (``initial_flow="dis"``) from OpenCV's DIS flow.
    """
    a, b = _as_gray(first, "first"), _as_gray(second, "second")
    if a.shape != b.shape:
        raise ValueError(f"tvl1_flow: images differ in size: {a.shape} vs {b.shape}")
    configure_opencv_threads(config)
    solver = solver or make_tvl1(config)
    initial = None
    if config.initial_flow == "dis":
        initial = cv2.DISOpticalFlow_create(DIS_PRESETS[config.initial_dis_preset]).calc(a, b, None)
    flow = solver.calc(a, b, initial)  # (H, W, 2)
    return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


def tvl1_flows_from_onset(onset: np.ndarray, frames: np.ndarray, config: TVL1Config) -> np.ndarray:
    """TV-L1 flow from ``onset`` to each of ``frames`` (K, H, W): (K, 2, H, W) float32."""
    solver = make_tvl1(config)
    out = np.empty((len(frames), 2, *onset.shape[:2]), dtype=np.float32)
    for i, frame in enumerate(frames):
        out[i] = tvl1_flow(onset, frame, config, solver)
    return out


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
