"""STAG: spatio-temporal attention over optical flow with an AU-guided graph.

The abstract (arXiv 2606.28083), sentence by sentence, and where it lives here:

1. "optical flow from discriminative frames, chosen by flow magnitude, with
   temporal attention over them"            -> ingestion picks the K frames;
                                                `TemporalAttention` weighs them.
2. "a spatial branch: an enhanced graph attention network (E-GAT) over facial
   ROIs, whose connectivity is AU-guided and dynamic"
                                             -> `RoiNodeEncoder` + `EdgeGAT`
                                                (GATv2 with the per-frame AU-guided
                                                edge weights as edge features).
3. "a temporal branch: a transformer encoder over the full selected sequence"
                                             -> `FrameEncoder` (a token per frame;
                                                shallow parallel conv streams by
                                                default) + nn.TransformerEncoder.
4. "a bidirectional cross-attention module in which each branch refines the
   other"                                    -> `BidirectionalCrossAttention`.
5. "fusion, then classification trained with focal loss"
                                             -> `Stag.classifier`, `Stag.criterion`
                                                (`focal_loss`; gamma 0 and no class
                                                weights by default, i.e. cross-entropy).

Shapes: B batch, K selected frames, R ROIs, E undirected edges, A AUs,
S ROI statistics, P ROI patch side, H W flow field, d = config.d_model.
Every component can be switched off in `ModelConfig` (schemas/model_config.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_geometric.nn import GATv2Conv

from schemas.model_config import ModelConfig, StreamOrder


@dataclass
class StagBatch:
    """Model inputs for one batch. ``edge_index`` and ``roi_ids`` describe the
    graph, shared by every sample of the batch."""

    flow: torch.Tensor  # (B, K, 2, H, W)
    strain: torch.Tensor  # (B, K, H, W)
    frame_mask: torch.Tensor  # (B, K) bool, True = a real frame (padding is False)
    roi_patches: torch.Tensor  # (B, K, R, 2, P, P)
    roi_stats: torch.Tensor  # (B, K, R, S)
    au_activation: torch.Tensor  # (B, K, A)
    edge_weight: torch.Tensor  # (B, K, E)
    edge_index: torch.Tensor  # (E, 2) long, ROI positions 0..R-1
    roi_ids: torch.Tensor  # (R,) long, identity of each ROI position (index into the identity table)
    # image arrays a model reads (stag_model.registry), by store array name: (B, C, S, S) each
    images: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "StagBatch":
        moved = {f.name: getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)
                 if f.name != "images"}
        return StagBatch(**moved, images={k: v.to(device, non_blocking=non_blocking) for k, v in self.images.items()})


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float, class_weights: torch.Tensor | None = None,
    smoothing: float = 0.0, valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): -alpha_t (1 - p_t)^gamma log p_t.

    Averaged like ``F.cross_entropy(weight=...)`` (sum of alpha_t * loss over
    sum of alpha_t), so gamma = 0 gives exactly weighted cross-entropy. With
    ``smoothing`` e the log-likelihood term is (1 - e) log p_t + e mean_c log p_c
    (unweighted, gamma 0: ``F.cross_entropy(label_smoothing=e)``).
    logits (B, C), targets (B,) long, class_weights (C,) or None; ``valid`` (B,) bool
    leaves padded samples out of the average (the fold-parallel trainer pads batches).
    """
    log_p = F.log_softmax(logits.float(), dim=-1)  # (B, C)
    log_p_t = log_p.gather(1, targets[:, None]).squeeze(1)  # (B,)
    likelihood = (1.0 - smoothing) * log_p_t + smoothing * log_p.mean(-1)  # (B,)
    loss = -((1.0 - log_p_t.exp()) ** gamma) * likelihood  # (B,)
    if valid is not None:
        weight = valid.to(loss.dtype) * (1.0 if class_weights is None else class_weights[targets])  # (B,)
        return (weight * loss).sum() / weight.sum().clamp(min=torch.finfo(loss.dtype).tiny)
    if class_weights is None:
        return loss.mean()
    alpha_t = class_weights[targets]  # (B,)
    return (alpha_t * loss).sum() / alpha_t.sum()


class ShallowStream(nn.Module):
    """One shallow stream (as in STSTNet): a conv, batch norm and ReLU in the given ``order``, then a
    max-pool (side and stride ``pool``, padding 1) and dropout.

        order "conv_relu_bn" (STSTNet as released):  y = BN(ReLU(conv(x)))
        order "conv_bn_relu":                         y = ReLU(BN(conv(x)))

    The parameter names (``conv``, ``bn``) are the same in both orders. x (N, C, H, W) -> (N, c, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, padding: int, pool: int, dropout: float,
                 order: StreamOrder = "conv_bn_relu"):
        super().__init__()
        if order not in ("conv_bn_relu", "conv_relu_bn"):
            raise ValueError(f"unknown stream order {order!r}; choose conv_bn_relu or conv_relu_bn")
        self.order = order
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=padding)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(pool, stride=pool, padding=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W)
        y = self.conv(x)  # (N, c, H + 2p - k + 1, ...)
        y = self.bn(F.relu(y)) if self.order == "conv_relu_bn" else F.relu(self.bn(y))
        return self.dropout(self.pool(y))  # (N, c, H', W')


class FrameEncoder(nn.Module):
    """One token per frame from its full (u, v[, strain]) field.

    ``frame_encoder="cnn"``: stacked conv-BN-GELU-pool blocks of widths
    ``frame_channels``. ``"shallow_streams"``: parallel one-conv streams of
    widths ``frame_streams`` whose maps are concatenated (few parameters, for
    small 28 x 28 inputs and a few hundred samples). Either way the maps are
    pooled to a g x g grid, which keeps where on the face the motion is."""

    def __init__(self, config: ModelConfig, in_channels: int):
        super().__init__()
        self.size = config.frame_size
        self.streams = None
        if config.frame_encoder == "shallow_streams":
            self.streams = nn.ModuleList(
                ShallowStream(in_channels, c, config.frame_kernel, config.frame_kernel // 2, config.frame_stream_pool,
                              config.frame_dropout, config.frame_stream_order) for c in config.frame_streams
            )
            width = sum(config.frame_streams)
        else:
            layers: list[nn.Module] = []
            width = in_channels
            for out in config.frame_channels:
                layers += [nn.Conv2d(width, out, config.frame_kernel, padding=config.frame_kernel // 2),
                           nn.BatchNorm2d(out), nn.GELU(), nn.MaxPool2d(2)]
                width = out
            self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(config.frame_pool_grid)
        self.proj = nn.Linear(width * config.frame_pool_grid**2, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (N, C, H, W)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="area")  # (N, C, s, s)
        maps = torch.cat([s(x) for s in self.streams], 1) if self.streams is not None else self.conv(x)  # (N, c, h, w)
        return self.proj(self.pool(maps).flatten(1))  # (N, c, g, g) -> (N, d)


class RoiNodeEncoder(nn.Module):
    """Node features: ROI flow patch (conv) + ROI statistics (+ ROI identity)."""

    def __init__(self, config: ModelConfig, n_stats: int):
        super().__init__()
        g = config.patch_pool_grid
        self.patch = nn.Sequential(
            nn.Conv2d(2, config.patch_channels, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(g), nn.Flatten()
        )
        self.patch_proj = nn.Linear(config.patch_channels * g * g, config.d_model)
        self.stats_proj = nn.Linear(n_stats, config.d_model) if n_stats else None
        self.identity = nn.Embedding(config.max_roi_ids, config.d_model) if config.roi_identity else None

    def forward(self, patches: torch.Tensor, stats: torch.Tensor, roi_ids: torch.Tensor) -> torch.Tensor:
        B, K, R, C, P, _ = patches.shape
        x = self.patch_proj(self.patch(patches.reshape(B * K * R, C, P, P)))  # (BKR, d)
        x = x.view(B, K, R, -1)  # (B, K, R, d)
        if self.stats_proj is not None:
            x = x + self.stats_proj(stats)  # (B, K, R, d)
        if self.identity is not None:
            x = x + self.identity(roi_ids)[None, None]  # (1, 1, R, d) broadcast
        return x


def dense_gatv2(conv: GATv2Conv, h: torch.Tensor, adjacency: torch.Tensor,
                weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """GATv2Conv's computation, with its parameters, on G small graphs of R nodes as dense tensors.

        e_ts = att . LeakyReLU(W_r h_t + W_l h_s + W_e w_ts)     for every edge s -> t (self-loops included)
        alpha_ts = softmax over the sources s of t of e_ts
        out_t = sum_s alpha_ts W_l h_s + b

    h (G, R, d_in); adjacency (R, R) bool [target, source]; weights (G, R, R) edge attribute per
    [target, source] or None. Returns out (G, R, heads * C) and alpha (G, R, R, heads) [target, source].
    It equals torch-geometric's sparse GATv2Conv (tests/model check it) and batches under torch.vmap."""
    G, R, _ = h.shape
    H, C = conv.heads, conv.out_channels
    x_l = conv.lin_l(h).view(G, R, H, C)  # sources
    x_r = conv.lin_r(h).view(G, R, H, C)  # targets
    e = x_r[:, :, None] + x_l[:, None, :]  # (G, R_t, R_s, H, C)
    if weights is not None:
        e = e + conv.lin_edge(weights[..., None]).view(G, R, R, H, C)
    logits = (F.leaky_relu(e, conv.negative_slope) * conv.att.view(1, 1, 1, H, C)).sum(-1)  # (G, R_t, R_s, H)
    alpha = logits.masked_fill(~adjacency[None, :, :, None], float("-inf")).softmax(2)  # over sources
    out = torch.einsum("gtsh,gshc->gthc", alpha, x_l).reshape(G, R, H * C)  # (G, R, H*C)
    return out + conv.bias, alpha


class EdgeGAT(nn.Module):
    """E-GAT: GATv2 layers whose attention logits see each edge's AU-guided
    dynamic weight (``edge_dim=1``), with residuals and LayerNorm. Self-loops
    take the mean weight of a node's incoming edges.

    Two implementations of one function with the same parameters: torch-geometric's sparse
    GATv2Conv (the reference) and ``dense_gatv2`` over the (R, R) adjacency, which batches
    under torch.vmap (the fold-parallel trainer sets ``dense``)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        d, h = config.d_model, config.gat_heads
        edge_dim = 1 if config.edge_features else None
        self.use_edges = config.edge_features
        self.convs = nn.ModuleList(
            GATv2Conv(d, d // h, heads=h, edge_dim=edge_dim, add_self_loops=True, fill_value="mean")
            for _ in range(config.gat_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(config.gat_layers))
        self.dropout = nn.Dropout(config.dropout)
        self.dense = False

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, K, R, d); edge_index (E, 2); edge_weight (B, K, E).
        Returns nodes (B, K, R, d), last layer's attention (B, K, 2E, heads)
        over the directed edges [i->j for all edges, then j->i], and the
        self-loop attention (B, K, R, heads)."""
        if bool((edge_index[:, 0] == edge_index[:, 1]).any()):
            raise ValueError("edge_index holds self-loops; the E-GAT adds its own, give only edges between two ROIs")
        return self._dense(x, edge_index, edge_weight) if self.dense else self._sparse(x, edge_index, edge_weight)

    def _sparse(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor):
        B, K, R, d = x.shape
        E = edge_index.shape[0]
        directed = torch.cat([edge_index, edge_index.flip(1)], 0).T  # (2, 2E)
        offsets = torch.arange(B * K, device=x.device) * R  # one graph per (sample, frame)
        batched = (directed[:, None, :] + offsets[None, :, None]).reshape(2, -1)  # (2, BK*2E)
        attr = None
        if self.use_edges:
            attr = torch.cat([edge_weight, edge_weight], -1).reshape(-1, 1)  # (BK*2E, 1)
        h = x.reshape(B * K * R, d)  # (BKR, d)
        alpha = None
        for conv, norm in zip(self.convs, self.norms):
            out, (_, alpha) = conv(h, batched, edge_attr=attr, return_attention_weights=True)
            h = norm(h + self.dropout(F.gelu(out)))  # (BKR, d)
        n_edges = B * K * 2 * E  # GATv2Conv keeps our edges first, then appends one self-loop per node
        edge_alpha = alpha[:n_edges].view(B, K, 2 * E, -1)  # (B, K, 2E, heads)
        loop_alpha = alpha[n_edges:].view(B, K, R, -1)  # (B, K, R, heads)
        return h.view(B, K, R, d), edge_alpha, loop_alpha

    def _dense_graph(self, edge_index: torch.Tensor, R: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """(source, target, to_cell, to_target, adjacency) of the graph, made once per graph: the directed
        edges (i->j, then j->i), one-hot maps from them to adjacency cells (2E, R*R) and to their targets
        (2E, R), and the adjacency with self-loops (R_t, R_s). Edge weights become an (R, R) matrix by a
        matrix product (no scatter, so that it batches under vmap)."""
        key = (R, dtype, edge_index.device, tuple(edge_index.flatten().tolist()))
        cache = self.__dict__.setdefault("_graph_cache", {})
        if key not in cache:
            source = torch.cat([edge_index[:, 0], edge_index[:, 1]])  # (2E,)
            target = torch.cat([edge_index[:, 1], edge_index[:, 0]])  # (2E,)
            to_cell = F.one_hot(target * R + source, R * R).to(dtype)  # (2E, R*R)
            to_target = F.one_hot(target, R).to(dtype)  # (2E, R)
            eye = torch.eye(R, dtype=torch.bool, device=edge_index.device)
            cache[key] = (source, target, to_cell, to_target, (to_cell.sum(0).view(R, R) > 0) | eye)
        return cache[key]

    def _dense(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor):
        B, K, R, d = x.shape
        E = edge_index.shape[0]
        source, target, to_cell, to_target, adjacency = self._dense_graph(edge_index, R, x.dtype)
        loops = torch.arange(R, device=x.device)
        weights = None
        if self.use_edges:
            directed = torch.cat([edge_weight, edge_weight], -1).reshape(B * K, 2 * E)  # (BK, 2E)
            incoming = (directed @ to_target) / to_target.sum(0).clamp(min=1)  # (BK, R) mean over incoming edges
            weights = (directed @ to_cell).view(B * K, R, R) + torch.diag_embed(incoming)  # (BK, R_t, R_s)
        h = x.reshape(B * K, R, d)  # (BK, R, d)
        alpha = None
        for conv, norm in zip(self.convs, self.norms):
            out, alpha = dense_gatv2(conv, h, adjacency, weights)
            h = norm(h + self.dropout(F.gelu(out)))  # (BK, R, d)
        edge_alpha = alpha[:, target, source].view(B, K, 2 * E, -1)  # (B, K, 2E, heads)
        loop_alpha = alpha[:, loops, loops].view(B, K, R, -1)  # (B, K, R, heads)
        return h.view(B, K, R, d), edge_alpha, loop_alpha


class TemporalAttention(nn.Module):
    """Additive attention over the K frames: one weight per frame, summing to 1
    over the real (unpadded) frames."""

    def __init__(self, d: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (B, K, d), mask (B, K)
        s = self.score(x).squeeze(-1).float()  # (B, K)
        return s.masked_fill(~mask, float("-inf")).softmax(-1)  # (B, K)


class BidirectionalCrossAttention(nn.Module):
    """ROI tokens attend to frame tokens and frame tokens to ROI tokens, both
    from the same inputs (neither direction sees the other's update)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        d, h, p = config.d_model, config.attention_heads, config.dropout
        self.roi_from_frames = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        self.frames_from_rois = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        self.norm_rois, self.norm_frames = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, rois: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor):
        """rois (B, R, d), frames (B, K, d), mask (B, K) -> refined rois, frames,
        weights roi->frame (B, R, K) and frame->roi (B, K, R)."""
        r, w_rf = self.roi_from_frames(rois, frames, frames, key_padding_mask=~mask)  # (B, R, d), (B, R, K)
        f, w_fr = self.frames_from_rois(frames, rois, rois)  # (B, K, d), (B, K, R)
        return self.norm_rois(rois + r), self.norm_frames(frames + f), w_rf, w_fr


class Stag(nn.Module):
    """The full model. ``forward(batch, targets)`` returns ``logits, loss``;
    ``explain(batch)`` returns the attention weights."""

    def __init__(self, config: ModelConfig, n_classes: int, n_aus: int, n_roi_stats: int):
        super().__init__()
        self.config = config
        d = config.d_model
        # temporal branch: a token per frame from the full field, then a transformer
        self.frame_encoder = FrameEncoder(config, 3 if config.use_strain else 2) if config.temporal_branch else None
        # frames 1 .. n-1 get CNNs of their own when frame_encoders = n > 1 (later frames share the last)
        self.later_frame_encoders = nn.ModuleList(
            FrameEncoder(config, 3 if config.use_strain else 2) for _ in range(config.frame_encoders - 1)
        ) if config.temporal_branch else None
        use_aus = config.temporal_branch and config.au_features and n_aus > 0
        self.au_proj = nn.Linear(n_aus, d) if use_aus else None
        # co-occurrence prior P(j | i) of the training fold; identity-free (zero diagonal), set by the trainer
        self.register_buffer("au_prior", torch.zeros(n_aus, n_aus), persistent=True)
        self.frame_position = nn.Embedding(config.max_frames, d) if config.temporal_branch else None
        self.transformer = None
        if config.temporal_branch and config.transformer:
            layer = nn.TransformerEncoderLayer(
                d, config.attention_heads, d * config.feedforward_mult, config.dropout, batch_first=True,
                norm_first=True, activation="gelu",
            )
            self.transformer = nn.TransformerEncoder(layer, config.transformer_layers, enable_nested_tensor=False)
        # spatial branch: ROI nodes through the E-GAT
        self.node_encoder = RoiNodeEncoder(config, n_roi_stats) if config.spatial_branch else None
        self.gat = EdgeGAT(config) if config.spatial_branch else None
        self.roi_pool = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1)) if config.spatial_branch else None
        # frames, cross-attention, fusion, classifier
        self.temporal_attention = TemporalAttention(d) if config.temporal_attention else None
        both = config.spatial_branch and config.temporal_branch
        self.cross = BidirectionalCrossAttention(config) if (both and config.cross_attention) else None
        fused = 2 * d if (both and config.fusion == "concat") else d
        self.classifier = nn.Sequential(
            nn.LayerNorm(fused), nn.Dropout(config.dropout), nn.Linear(fused, d), nn.GELU(),
            nn.Dropout(config.dropout), nn.Linear(d, n_classes),
        )
        self.register_buffer("class_weights", torch.ones(n_classes), persistent=True)
        self._capture: dict[str, torch.Tensor] | None = None

    # -- set by the trainer from the training fold only ----------------------
    def set_au_prior(self, prior: torch.Tensor) -> None:
        """prior (A, A): P(AU j present | AU i present) from training-fold ground truth."""
        self.au_prior.copy_(prior.clone().fill_diagonal_(0.0) if prior.numel() else prior)

    def set_class_weights(self, weights: torch.Tensor) -> None:
        self.class_weights.copy_(weights)

    # -- forward ---------------------------------------------------------------
    def _frame_tokens(self, b: StagBatch) -> torch.Tensor:
        B, K = b.flow.shape[:2]
        x = torch.cat([b.flow, b.strain[:, :, None]], 2) if self.config.use_strain else b.flow  # (B, K, C, H, W)
        if not self.later_frame_encoders:
            tokens = self.frame_encoder(x.flatten(0, 1)).view(B, K, -1)  # (B, K, d)
        else:
            encoders = [self.frame_encoder, *self.later_frame_encoders]
            tokens = torch.stack([encoders[min(k, len(encoders) - 1)](x[:, k]) for k in range(K)], 1)  # (B, K, d)
        if self.au_proj is not None:
            au = b.au_activation  # (B, K, A)
            if self.config.au_prior:
                au = au + au @ self.au_prior  # evidence spreads to AUs that co-occur in the training fold
            tokens = tokens + self.au_proj(au)  # (B, K, d)
        tokens = tokens + self.frame_position(torch.arange(K, device=tokens.device))[None]  # (B, K, d)
        if self.transformer is not None:
            tokens = self.transformer(tokens, src_key_padding_mask=~b.frame_mask)  # (B, K, d)
        return tokens

    def forward(self, b: StagBatch, targets: torch.Tensor | None = None, valid: torch.Tensor | None = None):
        """``logits`` (B, C) and the loss on ``targets`` (B,) when given; ``valid`` (B,) bool leaves
        padded samples out of the loss."""
        mask = b.frame_mask  # (B, K)
        frames = self._frame_tokens(b) if self.frame_encoder is not None else None  # (B, K, d)
        nodes = None
        if self.gat is not None:
            x = self.node_encoder(b.roi_patches, b.roi_stats, b.roi_ids)  # (B, K, R, d)
            nodes, edge_alpha, loop_alpha = self.gat(x, b.edge_index, b.edge_weight)  # (B, K, R, d)
        # temporal attention over the selected frames (summary: frame tokens, else mean node)
        summary = frames if frames is not None else nodes.mean(2)  # (B, K, d)
        if self.temporal_attention is not None:
            alpha = self.temporal_attention(summary, mask)  # (B, K)
        else:
            alpha = mask.float() / mask.float().sum(1, keepdim=True)  # (B, K) uniform over real frames
        rois = torch.einsum("bk,bkrd->brd", alpha.to(nodes.dtype), nodes) if nodes is not None else None  # (B, R, d)
        w_rf = w_fr = None
        if self.cross is not None:
            rois, frames, w_rf, w_fr = self.cross(rois, frames, mask)
        pooled = []
        if rois is not None:
            roi_alpha = self.roi_pool(rois).squeeze(-1).float().softmax(-1)  # (B, R)
            pooled.append(torch.einsum("br,brd->bd", roi_alpha.to(rois.dtype), rois))  # (B, d)
        if frames is not None:
            pooled.append(torch.einsum("bk,bkd->bd", alpha.to(frames.dtype), frames))  # (B, d)
        fused = torch.cat(pooled, -1) if self.config.fusion == "concat" else torch.stack(pooled).sum(0)
        logits = self.classifier(fused)  # (B, C)
        if self._capture is not None:
            self._capture.update(frames=alpha.detach())
            if nodes is not None:
                self._capture.update(rois=roi_alpha.detach(), edges=edge_alpha.detach(), self_loops=loop_alpha.detach())
            if w_rf is not None:
                self._capture.update(roi_to_frame=w_rf.detach(), frame_to_roi=w_fr.detach())
        return logits, (self.criterion(logits, targets, valid) if targets is not None else None)

    def criterion(self, logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Focal loss with the training fold's class weights (when weighting is on)."""
        weights = self.class_weights if self.config.class_weighting != "none" else None
        return focal_loss(logits, targets, self.config.focal_gamma, weights, self.config.label_smoothing, valid)

    @torch.no_grad()
    def explain(self, b: StagBatch) -> dict[str, torch.Tensor]:
        """Attention weights of one forward pass: ``frames`` (B, K); ``rois``
        (B, R); ``edges`` (B, K, 2E, heads) last GAT layer over directed edges
        [i->j, then j->i]; ``self_loops`` (B, K, R, heads); ``roi_to_frame``
        (B, R, K) and ``frame_to_roi`` (B, K, R); only those whose component is on."""
        self._capture = {}
        try:
            logits, _ = self.forward(b)
            out = dict(self._capture, probabilities=logits.softmax(-1))
        finally:
            self._capture = None
        return out
