"""STAG and STSTNet: shapes, attention normalisation, ROI-order invariance,
ablation flags, focal loss."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from schemas.model_config import ModelConfig, StstnetConfig
from stag_model.baselines import Ststnet
from stag_model.model import Stag, StagBatch, focal_loss

N_CLASSES = 3


def make_model(seed: int = 0, **flags) -> Stag:
    torch.manual_seed(seed)
    return Stag(ModelConfig(d_model=32, **flags), N_CLASSES, n_aus=5, n_roi_stats=5).eval()


@pytest.mark.parametrize("frames", [1, 4])
def test_shapes_for_one_and_several_frames(frames, make_batch):
    b = make_batch(batch=3, frames=frames)
    model = make_model()
    logits, loss = model(b, torch.tensor([0, 1, 2]))
    assert logits.shape == (3, N_CLASSES)
    assert loss.dim() == 0 and torch.isfinite(loss)
    att = model.explain(b)
    E, R = b.edge_index.shape[0], b.roi_ids.shape[0]
    assert att["frames"].shape == (3, frames)
    assert att["rois"].shape == (3, R)
    assert att["edges"].shape[:3] == (3, frames, 2 * E)
    assert att["roi_to_frame"].shape == (3, R, frames) and att["frame_to_roi"].shape == (3, frames, R)


def test_attention_weights_are_normalised(make_batch):
    b = make_batch(batch=2, frames=3)
    att = make_model().explain(b)
    ones = lambda x: torch.ones_like(x)  # noqa: E731
    torch.testing.assert_close(att["frames"].sum(-1), ones(att["frames"].sum(-1)))
    torch.testing.assert_close(att["rois"].sum(-1), ones(att["rois"].sum(-1)))
    torch.testing.assert_close(att["roi_to_frame"].sum(-1), ones(att["roi_to_frame"].sum(-1)))
    torch.testing.assert_close(att["frame_to_roi"].sum(-1), ones(att["frame_to_roi"].sum(-1)))
    # GATv2: at each destination node, incoming edges plus its self-loop sum to 1, per head
    dest = torch.cat([b.edge_index[:, 1], b.edge_index[:, 0]])  # (2E,) destination of each directed edge
    per_node = att["self_loops"].clone()  # (B, K, R, heads)
    per_node.index_add_(2, dest, att["edges"])
    torch.testing.assert_close(per_node, torch.ones_like(per_node))
    assert (att["edges"] >= 0).all() and (att["edges"] <= 1).all()


def test_padded_frames_get_no_weight_and_change_nothing(make_batch):
    b = make_batch(batch=2, frames=4)
    b.frame_mask[:, -1] = False
    model = make_model()
    logits, _ = model(b)
    assert (model.explain(b)["frames"][:, -1] == 0).all()
    b2 = StagBatch(**{**vars(b), "flow": b.flow.clone(), "roi_patches": b.roi_patches.clone()})
    b2.flow[:, -1] += 5.0
    b2.roi_patches[:, -1] += 5.0
    torch.testing.assert_close(model(b2)[0], logits)


def test_permuting_rois_with_the_graph_leaves_predictions_unchanged(make_batch):
    b = make_batch(batch=2, frames=3, rois=6)
    model = make_model()
    logits, _ = model(b)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])  # new position p holds old ROI perm[p]
    new_of_old = torch.argsort(perm)
    permuted = StagBatch(**{
        **vars(b), "roi_patches": b.roi_patches[:, :, perm], "roi_stats": b.roi_stats[:, :, perm],
        "roi_ids": b.roi_ids[perm], "edge_index": new_of_old[b.edge_index],
    })
    torch.testing.assert_close(model(permuted)[0], logits, rtol=1e-5, atol=1e-5)
    # and the ROI attention moves with the ROIs
    torch.testing.assert_close(model.explain(permuted)["rois"], model.explain(b)["rois"][:, perm], rtol=1e-5, atol=1e-6)


def _changed(model: Stag, b: StagBatch, field: str) -> bool:
    """Does perturbing ``field`` change the logits?"""
    other = StagBatch(**{**vars(b), field: getattr(b, field) + torch.randn_like(getattr(b, field))})
    return not torch.allclose(model(b)[0], model(other)[0], atol=1e-6)


def test_each_ablation_flag_removes_its_component(make_batch):
    b = make_batch(batch=2, frames=3)
    full = make_model()
    n_full = sum(p.numel() for p in full.parameters())
    assert all(_changed(full, b, f) for f in ("flow", "strain", "roi_patches", "edge_weight", "au_activation"))

    no_spatial = make_model(spatial_branch=False)
    assert no_spatial.gat is None and no_spatial.node_encoder is None and no_spatial.cross is None
    assert not _changed(no_spatial, b, "roi_patches") and not _changed(no_spatial, b, "edge_weight")

    no_temporal = make_model(temporal_branch=False)
    assert no_temporal.frame_encoder is None and no_temporal.transformer is None
    assert not _changed(no_temporal, b, "flow") and not _changed(no_temporal, b, "au_activation")

    no_edges = make_model(edge_features=False)
    assert not _changed(no_edges, b, "edge_weight") and _changed(no_edges, b, "roi_patches")
    assert all(conv.lin_edge is None for conv in no_edges.gat.convs)

    no_strain = make_model(use_strain=False)
    assert not _changed(no_strain, b, "strain")

    no_aus = make_model(au_features=False)
    assert no_aus.au_proj is None and not _changed(no_aus, b, "au_activation")

    no_identity = make_model(roi_identity=False)
    assert no_identity.node_encoder.identity is None
    shuffled_ids = StagBatch(**{**vars(b), "roi_ids": b.roi_ids.flip(0)})
    torch.testing.assert_close(no_identity(b)[0], no_identity(shuffled_ids)[0])
    assert not torch.allclose(full(b)[0], full(shuffled_ids)[0])

    no_time_attention = make_model(temporal_attention=False)
    assert no_time_attention.temporal_attention is None
    torch.testing.assert_close(no_time_attention.explain(b)["frames"], torch.full((2, 3), 1 / 3))

    no_cross = make_model(cross_attention=False)
    assert no_cross.cross is None and "roi_to_frame" not in no_cross.explain(b)
    no_transformer = make_model(transformer=False)
    assert no_transformer.transformer is None
    for m in (no_spatial, no_temporal, no_edges, no_aus, no_identity, no_time_attention, no_cross, no_transformer):
        assert sum(p.numel() for p in m.parameters()) < n_full


def test_au_prior_spreads_activation_to_cooccurring_aus(make_batch):
    b = make_batch(batch=2, frames=2, aus=5)
    model = make_model()
    before = model(b)[0]
    prior = torch.zeros(5, 5)
    prior[0, 1] = 1.0
    model.set_au_prior(prior)
    assert not torch.allclose(model(b)[0], before)
    no_prior = make_model(au_prior=False)
    no_prior.set_au_prior(prior)
    torch.testing.assert_close(no_prior(b)[0], make_model(au_prior=False)(b)[0])


def test_both_branches_off_is_refused():
    with pytest.raises(ValueError, match="both off"):
        ModelConfig(spatial_branch=False, temporal_branch=False)


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_smaller_otherwise():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(16, 4, generator=g), torch.randint(0, 4, (16,), generator=g)
    weights = torch.tensor([0.5, 1.0, 2.0, 1.5])
    torch.testing.assert_close(focal_loss(logits, targets, 0.0), F.cross_entropy(logits, targets))
    torch.testing.assert_close(focal_loss(logits, targets, 0.0, weights), F.cross_entropy(logits, targets, weight=weights))
    assert focal_loss(logits, targets, 2.0) < F.cross_entropy(logits, targets)
    # hand value: one sample, p_t = 0.5 -> -(0.5 ** 2) * log(0.5)
    torch.testing.assert_close(focal_loss(torch.zeros(1, 2), torch.tensor([1]), 2.0), torch.tensor(0.25 * 0.6931472))


def test_label_smoothing_matches_torch_and_spreads_the_target():
    g = torch.Generator().manual_seed(1)
    logits, targets = torch.randn(16, 4, generator=g), torch.randint(0, 4, (16,), generator=g)
    torch.testing.assert_close(focal_loss(logits, targets, 0.0, smoothing=0.1),
                               F.cross_entropy(logits, targets, label_smoothing=0.1))
    # hand value: two classes, uniform logits -> every term is log 2 whatever the smoothing
    torch.testing.assert_close(focal_loss(torch.zeros(1, 2), torch.tensor([0]), 0.0, smoothing=0.3),
                               torch.tensor(0.6931472))
    confident = torch.tensor([[8.0, 0.0, 0.0]])  # a right, confident prediction costs more when smoothed
    assert focal_loss(confident, torch.tensor([0]), 0.0, smoothing=0.1) > focal_loss(confident, torch.tensor([0]), 0.0)


def test_ststnet_shapes_and_apex_frame_choice(make_batch):
    config = StstnetConfig()
    model = Ststnet(config, N_CLASSES).eval()
    b = make_batch(batch=2, frames=3)
    b.flow[0, 1] *= 10  # frame 1 moves most in sample 0
    volume = Ststnet.apex_volume(b, config.input_size)
    assert volume.shape == (2, 3, 28, 28)
    expected = F.interpolate(torch.cat([b.flow[0, 1], b.strain[0, 1][None]])[None], size=(28, 28), mode="area")[0]
    torch.testing.assert_close(volume[0], expected)
    logits, loss = model(b, torch.tensor([0, 2]))
    assert logits.shape == (2, N_CLASSES) and torch.isfinite(loss)
    assert sum(p.numel() for p in model.parameters()) < 2000  # the paper's net is tiny (~1.6k weights)
    # frame "first": the first frame whatever moves most (the two-phase composite's onset -> apex)
    first = Ststnet.apex_volume(b, config.input_size, "first")
    expected = F.interpolate(torch.cat([b.flow[:, 0], b.strain[:, 0, None]], 1), size=(28, 28), mode="area")
    torch.testing.assert_close(first, expected)
    reads_first = Ststnet(StstnetConfig(frame="first"), N_CLASSES).eval()
    reads_first.load_state_dict(model.state_dict())
    assert not torch.allclose(reads_first(b)[0][0], model(b)[0][0])  # sample 0's volumes differ


@pytest.mark.parametrize("frames", [1, 4])
def test_shallow_stream_frame_encoder_shapes_and_inputs(frames, make_batch):
    b = make_batch(batch=3, frames=frames)
    model = make_model(frame_encoder="shallow_streams", frame_streams=(3, 5, 8), frame_pool_grid=5)
    assert len(model.frame_encoder.streams) == 3 and model.frame_encoder.proj.in_features == 16 * 5 * 5
    logits, loss = model(b, torch.tensor([0, 1, 2]))
    assert logits.shape == (3, N_CLASSES) and torch.isfinite(loss)
    assert _changed(model, b, "flow") and _changed(model, b, "strain")
    assert not _changed(make_model(frame_encoder="shallow_streams", use_strain=False), b, "strain")


@pytest.mark.parametrize("encoders", [1, 2])
def test_frame_encoders_give_each_frame_position_its_own_cnn(encoders, make_batch):
    """frame_encoders = n: frame k is encoded by CNN min(k, n - 1) (n = 1: one CNN shared by every frame)."""
    b = make_batch(batch=2, frames=3)
    model = make_model(frame_encoders=encoders, transformer=False, au_features=False)
    assert len(model.later_frame_encoders) == encoders - 1
    x = torch.cat([b.flow, b.strain[:, :, None]], 2)  # (B, K, 3, H, W)
    tokens = model._frame_tokens(b) - model.frame_position.weight[:3][None]  # (B, K, d)
    own = [model.frame_encoder, *model.later_frame_encoders]
    for k in range(3):
        torch.testing.assert_close(tokens[:, k], own[min(k, encoders - 1)](x[:, k]))
    if encoders > 1:  # the later CNN is its own: the first one's output differs on the same frame
        assert not torch.allclose(tokens[:, 1], model.frame_encoder(x[:, 1]))


@pytest.mark.parametrize("edge_features", [True, False])
def test_dense_egat_equals_torch_geometric(edge_features, make_batch):
    """The dense E-GAT (fold-parallel training) is torch-geometric's GATv2Conv with the same parameters:
    nodes and attention agree, also for ROIs without edges (self-loop only) and under gradients."""
    torch.manual_seed(3)
    model = Stag(ModelConfig(d_model=16, edge_features=edge_features), n_classes=3, n_aus=5, n_roi_stats=5)
    model.eval()
    b = make_batch(batch=3, frames=2)
    keep = (b.edge_index != 5).all(1)  # ROI 5 keeps no edge: only its self-loop
    b = dataclasses.replace(b, edge_index=b.edge_index[keep], edge_weight=b.edge_weight[..., keep])
    x = model.node_encoder(b.roi_patches, b.roi_stats, b.roi_ids)
    sparse = model.gat(x, b.edge_index, b.edge_weight)
    model.gat.dense = True
    dense = model.gat(x, b.edge_index, b.edge_weight)
    for a, d in zip(sparse, dense):
        torch.testing.assert_close(d, a, rtol=1e-5, atol=1e-5)
    model.train()
    grads = []
    for use_dense in (False, True):
        model.zero_grad()
        model.gat.dense = use_dense
        torch.manual_seed(0)  # the same dropout masks
        model(b, torch.tensor([0, 1, 2]))[1].backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.gat.parameters()]))
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)
