"""Design runs for STAG on the two-phase composite (``stores/megc2019_phases.zarr``, issue 24):
5-fold GroupKFold by subject, 25 fixed epochs, 4 seeds, pooled UF1 / UAR per variant.

Each variant switches one of STAG's own parts off from the defaults (E-GAT branch, AU-guided
dynamic edges, cross-attention, temporal attention over the K phases), or names another store
of the same samples (K = 1: onset -> apex only; schematic instead of real landmarks), so that
the gain of each part is measured on design folds, never on the LOSO test folds.

    python benchmarks/phases_design.py --store stores/megc2019_phases.zarr --variants ph_defaults,ph_no_gat --seeds 1,2,3,4
    python benchmarks/phases_design.py --store stores/megc2019_phases_k1.zarr --variants ph_defaults_k1 --seeds 1,2,3,4

The stores are built with ``stag-ingest --catalog data_catalog.yaml --dataset megc2019_phases``
and the same entry with ``options.composite_phases`` set (``benchmarks/_stores.py`` builds them
under other names: ``phase_store``). Results merge into ``benchmarks/results/phases_design.json``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.composite_design import main  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "phases_design.json"
# the ModelConfig / TrainConfig / DataConfig defaults of today, spelled out (composite_design.CURRENT)
DEFAULTS = {"frame_encoder": "shallow_streams", "frame_pool_grid": 5, "frame_dropout": 0.5, "focal_gamma": 2.0,
            "class_weighting": "none", "frame_stream_order": "conv_bn_relu"}
BASE = dict(model="stag", epochs=25, model_over=DEFAULTS, train_over={"test_time_flip": True},
            data_over={"shift_pixels": 1})
VARIANTS: dict[str, dict] = {
    "ph_defaults": BASE,
    "ph_no_gat": {**BASE, "model_over": {**DEFAULTS, "spatial_branch": False}},
    "ph_no_dynamic_edges": {**BASE, "model_over": {**DEFAULTS, "edge_features": False}},
    "ph_no_cross_attention": {**BASE, "model_over": {**DEFAULTS, "cross_attention": False}},
    "ph_no_temporal_attention": {**BASE, "model_over": {**DEFAULTS, "temporal_attention": False}},
    # the same defaults on other stores of the same 442 samples (the name says which store it expects)
    "ph_defaults_k1": BASE,
    "ph_defaults_schematic": BASE,
    "ph_defaults_k3": BASE,
    "ph_defaults_megc": BASE,  # frames [megc_onset_apex]: the flow images with real landmarks
    "ph_defaults_megc_ao": BASE,  # frames [megc_onset_apex, apex_offset]
    # reference_frame flow: the flow images as they are, the phase images warped into their crop
    "ph_defaults_megc_native": BASE,
    "ph_defaults_megc_native_schematic": BASE,
    "ph_defaults_megc_ao_native": BASE,
    "ph_ststnet": dict(model="ststnet", epochs=40),
}

if __name__ == "__main__":
    main(VARIANTS, RESULTS, Path("stores/megc2019_phases.zarr"), __doc__)
