"""Design runs for STAG on the two-phase composite (``stores/megc2019_phases.zarr``, issue 24):
5-fold GroupKFold by subject, 25 fixed epochs, 4 seeds, pooled UF1 / UAR per variant.

Each variant switches one of STAG's own parts off from the defaults (E-GAT branch, AU-guided
dynamic edges, cross-attention, temporal attention over the K phases), or names another store
of the same samples (K = 1: onset -> apex only; schematic instead of real landmarks), so that
the gain of each part is measured on design folds, never on the LOSO test folds.

    python benchmarks/phases_design.py --store stores/megc2019_phases.zarr --variants ph_defaults,ph_no_gat --seeds 1,2,3,4
    python benchmarks/phases_design.py --store stores/megc2019_phases_k1.zarr --variants ph_defaults_k1 --seeds 1,2,3,4

The stores are built with ``stag-ingest --catalog data_catalog.yaml --dataset megc2019_phases``
and the same entry with ``options.composite_phases`` set; ``python benchmarks/phases_design.py build
NAME`` builds stores/NAME.zarr with the options ``STORES`` gives it (``benchmarks._stores.composite_store``).
Results merge into ``benchmarks/results/phases_design.json``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.composite_design import main  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "phases_design.json"
# The store comparison (variants ph_*) ran with focal gamma 2 by mistake (today's default is 0, chosen on
# the K = 1 store: s5_g0 in composite_design); it compares stores with one setting. The g0_* variants are
# today's defaults exactly (stag-fit's, composite_design.CURRENT), as the LOSO runs use them.
DEFAULTS = {"frame_encoder": "shallow_streams", "frame_pool_grid": 5, "frame_dropout": 0.5, "focal_gamma": 2.0,
            "class_weighting": "none", "frame_stream_order": "conv_bn_relu"}
TODAY = {**DEFAULTS, "focal_gamma": 0.0}
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
    # phase_minmax: each phase image min-max normalised per image, as the flow images are
    "ph_defaults_k1_minmax": BASE,
    "ph_defaults_minmax": BASE,
    "ph_ststnet": dict(model="ststnet", epochs=40),
}
G0 = {**BASE, "model_over": TODAY}
VARIANTS.update({
    "g0_k2": G0,  # stores/megc2019_phases.zarr (onset->apex, apex->offset; real landmarks)
    "g0_k1": G0,  # stores/megc2019_phases_k1.zarr
    "g0_k3": G0,  # stores/megc2019_phases_k3.zarr
    "g0_megc_native": G0,  # stores/megc2019_phases_megc_native.zarr
    "g0_megc_native_schematic": G0,  # stores/megc2019_phases_megc_native_schematic.zarr
    "g0_k2_schematic": G0,  # stores/megc2019_phases_schematic.zarr
    "g0_k2_no_gat": {**G0, "model_over": {**TODAY, "spatial_branch": False}},
    "g0_k2_no_dynamic_edges": {**G0, "model_over": {**TODAY, "edge_features": False}},
    "g0_k2_no_cross_attention": {**G0, "model_over": {**TODAY, "cross_attention": False}},
    "g0_k2_no_temporal_attention": {**G0, "model_over": {**TODAY, "temporal_attention": False}},
})
# A frame CNN per phase (ModelConfig.frame_encoders = 2): the relaxation runs the other way from the
# contraction, so one shared CNN must learn both directions from 442 samples
VARIANTS.update({
    "g0_k2_per_phase": {**G0, "model_over": {**TODAY, "frame_encoders": 2}},
    # two TV-L1 computations of onset -> apex side by side, each with its own CNN, in the flow images' crop:
    # composite_phases {frames: [megc_onset_apex, onset_apex], reference_frame: flow} (+ apex_offset: k3_native)
    "g0_megc_oa_native_pf": {**G0, "model_over": {**TODAY, "frame_encoders": 2}},
    "g0_k3_native_pf": {**G0, "model_over": {**TODAY, "frame_encoders": 3}},
    # ROI boxes as the landmarks give them (composite_phases.roi_min_side_px 0; the flow-image store's
    # schematic boxes are 4-5 px, the phase stores grow every box to 7 px)
    "g0_megc_native_schematic_roi0": G0,
    "g0_megc_native_roi0": G0,
    # the two onset -> apex computations as views of one motion (ModelConfig.frame_views, removed after these
    # runs: no gain, so the views variants cannot be rerun): each frame trained as a sample of its own,
    # probabilities averaged over the frames at prediction; composite_phases {frames: [megc_onset_apex,
    # onset_apex], reference_frame: flow, landmarks: schematic, phase_minmax: true} (+ roi_min_side_px 0: _roi0)
    "g0_views": {**G0, "model_over": {**TODAY, "frame_views": True}},
    "g0_views_roi0": {**G0, "model_over": {**TODAY, "frame_views": True}},
    "g0_views_as_sequence": G0,
    # the two phases with the schematic template's boxes as they are (composite_phases {landmarks: schematic,
    # roi_min_side_px: 0}); the E-GAT's worth on the best K = 1 store (megc_native_schematic_roi0)
    "g0_k2_schematic_roi0": G0,
    "g0_k2_schematic_roi0_pf": {**G0, "model_over": {**TODAY, "frame_encoders": 2}},
    "g0_megc_native_schematic_roi0_no_gat": {**G0, "model_over": {**TODAY, "spatial_branch": False}},
    # the two phases as views of one expression (frame_views, removed): the relaxation runs the other way
    "g0_k2_schematic_roi0_views": {**G0, "model_over": {**TODAY, "frame_views": True}},
})

# The composite_phases options of each store the variants name (the rest at CompositePhasesConfig's defaults),
# as each store records them; `python benchmarks/phases_design.py build NAME [NAME ...]` builds stores/NAME.zarr
ONSET_APEX, APEX_OFFSET, FLOW_IMAGE = "onset_apex", "apex_offset", "megc_onset_apex"
STORES: dict[str, dict] = {
    "megc2019_phases": {},
    "megc2019_phases_k1": {"frames": [ONSET_APEX]},
    "megc2019_phases_k1_minmax": {"frames": [ONSET_APEX], "phase_minmax": True},
    "megc2019_phases_schematic": {"landmarks": "schematic"},
    "megc2019_phases_k3": {"frames": [FLOW_IMAGE, ONSET_APEX, APEX_OFFSET]},
    "megc2019_phases_megc": {"frames": [FLOW_IMAGE]},
    "megc2019_phases_megc_ao": {"frames": [FLOW_IMAGE, APEX_OFFSET]},
    "megc2019_phases_megc_native": {"frames": [FLOW_IMAGE], "reference_frame": "flow"},
    "megc2019_phases_megc_native_schematic": {"frames": [FLOW_IMAGE], "reference_frame": "flow",
                                              "landmarks": "schematic"},
    "megc2019_phases_megc_ao_native": {"frames": [FLOW_IMAGE, APEX_OFFSET], "reference_frame": "flow"},
    "megc2019_phases_megc_oa_native": {"frames": [FLOW_IMAGE, ONSET_APEX], "reference_frame": "flow"},
    "megc2019_phases_k3_native": {"frames": [FLOW_IMAGE, ONSET_APEX, APEX_OFFSET], "reference_frame": "flow"},
    "megc2019_phases_megc_native_roi0": {"frames": [FLOW_IMAGE], "reference_frame": "flow", "roi_min_side_px": 0.0},
    "megc2019_phases_megc_native_schematic_roi0": {"frames": [FLOW_IMAGE], "reference_frame": "flow",
                                                   "landmarks": "schematic", "roi_min_side_px": 0.0},
    "megc2019_phases_schematic_roi0": {"landmarks": "schematic", "roi_min_side_px": 0.0},
    "megc2019_phases_views": {"frames": [FLOW_IMAGE, ONSET_APEX], "reference_frame": "flow",
                              "landmarks": "schematic", "phase_minmax": True},
    "megc2019_phases_views_roi0": {"frames": [FLOW_IMAGE, ONSET_APEX], "reference_frame": "flow",
                                   "landmarks": "schematic", "phase_minmax": True, "roi_min_side_px": 0.0},
}


def build(names: list[str]) -> None:
    from benchmarks._stores import composite_store

    for name in names:
        if name not in STORES:
            raise SystemExit(f"unknown store {name!r}; known: {', '.join(STORES)}")
        path, seconds = composite_store(Path("stores"), name, STORES[name])
        print(f"{path}: {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["build"]:
        build(sys.argv[2:])
    else:
        main(VARIANTS, RESULTS, Path("stores/megc2019_phases.zarr"), __doc__)
