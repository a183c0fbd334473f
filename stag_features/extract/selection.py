"""Selection of K discriminative frames from a motion ranking.

Rule (deterministic):
1. The apex is always selected.
2. Walk the ranking (largest motion first) and take a frame when it is at
   least ``min_gap`` frames away from every frame already taken (and is
   neither the onset when ``exclude_onset`` nor a frame without a face).
3. If fewer than K frames were taken, repeat step 2 with the gap lowered by
   one, down to a gap of 1 (distinct frames).
4. If the clip still has fewer than K candidate frames, the taken frames are
   repeated in ranking order until there are K (a fixed K keeps every sample
   the same shape in the store; duplicates are visible as equal positions).
5. The result is returned in time order.
"""
from __future__ import annotations

import numpy as np

from schemas.motion_config import SelectionConfig


def select_frames(ranked: np.ndarray, apex: int, config: SelectionConfig, onset: int = 0,
                  excluded: set[int] | frozenset[int] = frozenset()) -> np.ndarray:
    """K frame positions (int32, time order) chosen from ``ranked`` (all positions 0..T-1).

    ``excluded`` positions (frames where the face was not found) are never
    chosen, except the apex itself when it was annotated there.
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    n = len(ranked)
    if n < 2:
        raise ValueError(f"select_frames: need at least 2 frames (onset and one more), got {n}")
    if not 0 <= apex < n:
        raise ValueError(f"select_frames: apex {apex} is outside 0..{n - 1}")
    if sorted(ranked.tolist()) != list(range(n)):
        raise ValueError("select_frames: ranked must be a permutation of 0..T-1")
    candidates = [int(p) for p in ranked if not (config.exclude_onset and p == onset) and int(p) not in excluded]
    if not candidates:
        raise ValueError(f"select_frames: no frame left to select among {n} (onset and {len(excluded)} excluded)")
    if apex == onset and config.exclude_onset:
        # the onset has zero flow from itself: use the best-ranked other frame as anchor
        apex = candidates[0]
    chosen = [apex]
    for gap in range(max(config.min_gap, 1), 0, -1):
        for p in candidates:
            if len(chosen) == config.k:
                break
            if all(abs(p - q) >= gap for q in chosen):
                chosen.append(p)
        if len(chosen) == config.k:
            break
    by_rank = [p for p in candidates if p in chosen]
    i = 0
    while len(chosen) < config.k:  # clip shorter than K: repeat in ranking order
        chosen.append(by_rank[i % len(by_rank)])
        i += 1
    return np.array(sorted(chosen), dtype=np.int32)
