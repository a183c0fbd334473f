"""AU-guided dynamic edge weights over the static anatomical ROI graph.

The graph's edges are the config's static anatomical adjacency
(``stag_features.extract.rois.static_edges``): which ROIs touch on the face. They never
change. What changes per selected frame is each edge's weight, driven by the
flow-derived AU cue of that frame (``stag_features.extract.aus.flow_au_cue``):

    S_ij   = { a : AU a acts on ROI i and on ROI j }
    C_ij   = { (p, q) in cooccurrence (either order) : p acts on i, q acts on j,
               or p acts on j, q acts on i }
    e_ij   = sum_{a in S_ij} c_a  +  lambda_c * sum_{(p,q) in C_ij} sqrt(c_p * c_q)
    w_ij   = base + gain * tanh(e_ij / activation_scale)

with c the frame's AU cue (negative values clipped to 0), lambda_c =
``cooccurrence_weight``. "AU a acts on ROI r" means r is in the face config's
AU-to-ROI map (``rois.au_rois``) or in the AU's expected-direction specs
(``aus.directions``). The co-occurrence table is a fixed FACS/EMFACS prior
in the config; nothing here looks at any sample's labels, this one's included.

Properties: w_ij = base when no relevant AU moves; w_ij is non-decreasing in
every activation; 0 <= w_ij - base < gain; reordering ROIs (with the edges
re-indexed accordingly) permutes nothing but the edge order.
"""
from __future__ import annotations

import numpy as np

from schemas.motion_config import AUConfig, GraphConfig


def au_roi_sets(roi_names: list[str], au_config: AUConfig,
                au_roi_indices: dict[int, list[int]] | None = None) -> dict[int, set[int]]:
    """For each configured AU, the ROI indices it acts on (union of the face
    config's AU-to-ROI map and the AU's direction specs)."""
    index = {name: i for i, name in enumerate(roi_names)}
    acts: dict[int, set[int]] = {}
    for au in au_config.aus:
        rois = {index[s.roi] for s in au_config.directions.get(au, ()) if s.roi in index}
        rois |= set((au_roi_indices or {}).get(au, ()))
        acts[au] = rois
    return acts


def edge_evidence(activations: np.ndarray, aus: tuple[int, ...], edges: np.ndarray,
                  acts: dict[int, set[int]], config: GraphConfig) -> np.ndarray:
    """e_ij per frame and edge, (K, E) float64 (see module docstring)."""
    activations = np.maximum(np.asarray(activations, dtype=np.float64), 0.0)
    if activations.ndim != 2 or activations.shape[1] != len(aus):
        raise ValueError(f"edge_evidence: activations must be (K, {len(aus)}), got {activations.shape}")
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    column = {au: a for a, au in enumerate(aus)}
    pairs = [(p, q) for p, q in config.cooccurrence if p in column and q in column]
    evidence = np.zeros((activations.shape[0], len(edges)), dtype=np.float64)
    for e, (i, j) in enumerate(edges):
        for au in aus:
            if i in acts[au] and j in acts[au]:
                evidence[:, e] += activations[:, column[au]]
        for p, q in pairs:
            linked = (i in acts[p] and j in acts[q]) or (j in acts[p] and i in acts[q])
            if linked:
                evidence[:, e] += config.cooccurrence_weight * np.sqrt(
                    activations[:, column[p]] * activations[:, column[q]]
                )
    return evidence


def dynamic_edge_weights(activations: np.ndarray, aus: tuple[int, ...], edges: np.ndarray,
                         acts: dict[int, set[int]], config: GraphConfig) -> np.ndarray:
    """AU-guided weight of every static edge for every frame, (K, E) float32."""
    evidence = edge_evidence(activations, aus, edges, acts, config)
    return (config.base + config.gain * np.tanh(evidence / config.activation_scale)).astype(np.float32)
