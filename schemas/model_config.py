"""Typed configuration of the trainer: the STAG model, the STSTNet baseline,
the fit loop and the data path. Every default is visible here; code paths read
them from these objects and hard-code none.

Where the STAG abstract (arXiv 2606.28083) is silent, the choice made is
written next to the field, and it is a switch so that an ablation is one flag
away (``ModelConfig.model_copy(update={"cross_attention": False})``).
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ClassWeighting = Literal["none", "inverse_frequency", "sqrt_inverse_frequency"]
# the order of conv, batch norm and ReLU in a shallow stream (stag_model.model.ShallowStream)
StreamOrder = Literal["conv_bn_relu", "conv_relu_bn"]
# power p of the class weight 1 / count**p for each ClassWeighting
CLASS_WEIGHT_POWER: dict[str, float] = {"none": 0.0, "inverse_frequency": 1.0, "sqrt_inverse_frequency": 0.5}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Frozen):
    """STAG architecture and its ablation flags (True = component present)."""

    # -- ablation flags: each removes one component of the abstract ----------
    temporal_attention: bool = Field(True, description="attention over the K magnitude-selected frames; off = mean")
    spatial_branch: bool = Field(True, description="E-GAT over ROI nodes")
    edge_features: bool = Field(True, description="AU-guided dynamic edge weights enter GATv2 attention as edge features")
    roi_identity: bool = Field(True, description="learned embedding of each ROI's name added to its node features")
    temporal_branch: bool = Field(True, description="per-frame CNN tokens of the full flow field")
    transformer: bool = Field(True, description="transformer encoder over the frame tokens (off = tokens as they are)")
    cross_attention: bool = Field(True, description="bidirectional cross-attention between the two branches")
    au_features: bool = Field(
        True, description="flow-derived AU activations (K, A) added to the frame tokens (not in the abstract)"
    )
    au_prior: bool = Field(
        True,
        description="propagate AU activations through the AU co-occurrence prior of the training fold "
        "(ground-truth AUs of training samples only); needs au_features",
    )
    use_strain: bool = Field(True, description="optical strain as the third input channel of the frame CNN")
    # -- sizes --------------------------------------------------------------
    d_model: int = Field(64, ge=8, le=1024, description="width of every token")
    frame_size: int = Field(28, ge=8, le=256, description="full flow field resized to this side before the frame CNN")
    frame_encoder: Literal["cnn", "shallow_streams"] = Field(
        "shallow_streams",
        description="per-frame CNN: parallel one-conv streams (shallow_streams) or stacked conv blocks (cnn)",
    )
    frame_channels: tuple[int, ...] = Field((16, 32), description="cnn: conv widths, one 2x pool each")
    frame_streams: tuple[int, ...] = Field((3, 5, 8), description="shallow_streams: width of each parallel stream")
    frame_kernel: int = Field(3, ge=1, le=15, description="conv kernel side of the frame CNN (odd: 'same' padding)")
    frame_stream_pool: int = Field(3, ge=1, le=8, description="shallow_streams: max-pool side and stride")
    frame_dropout: float = Field(0.5, ge=0, lt=1, description="shallow_streams: dropout on each stream's maps")
    frame_stream_order: StreamOrder = Field(
        "conv_bn_relu", description="shallow_streams: conv -> batch norm -> ReLU (conv_bn_relu) or conv -> ReLU -> "
        "batch norm (conv_relu_bn, STSTNet's released order) in each stream"
    )
    frame_pool_grid: int = Field(
        5, ge=1, le=16, description="frame CNN output pooled to g x g then flattened: keeps where the motion is"
    )
    patch_channels: int = Field(16, ge=1, le=256, description="conv width of the ROI patch encoder")
    patch_pool_grid: int = Field(3, ge=1, le=16, description="ROI patch features pooled to g x g then flattened")
    gat_layers: int = Field(2, ge=1, le=8)
    gat_heads: int = Field(4, ge=1, le=16)
    transformer_layers: int = Field(1, ge=1, le=12)
    attention_heads: int = Field(4, ge=1, le=16, description="heads of the transformer and the cross-attention")
    feedforward_mult: int = Field(2, ge=1, le=8)
    max_frames: int = Field(64, ge=1, le=1024, description="size of the learned frame-position table")
    max_roi_ids: int = Field(256, ge=1, description="size of the ROI identity table (ids come from ROI names)")
    dropout: float = Field(0.2, ge=0, lt=1)
    fusion: Literal["concat", "sum"] = Field(
        "concat", description="how the pooled spatial and temporal vectors combine before the classifier"
    )
    # -- loss ---------------------------------------------------------------
    focal_gamma: float = Field(
        0.0, ge=0, description="focal loss focusing parameter; 0 = (class-weighted) cross-entropy"
    )
    class_weighting: ClassWeighting = Field(
        "none", description="focal loss alpha per class, from the training fold's class counts: 1 / count "
        "(inverse_frequency), 1 / sqrt(count) (sqrt_inverse_frequency) or none"
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="target = (1 - e) one-hot + e uniform over classes; 0 = off"
    )

    @model_validator(mode="after")
    def _one_branch_at_least(self) -> "ModelConfig":
        if not (self.spatial_branch or self.temporal_branch):
            raise ValueError("spatial_branch and temporal_branch are both off: the model would see no input")
        if self.d_model % self.attention_heads or self.d_model % self.gat_heads:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by attention_heads={self.attention_heads} "
                f"and gat_heads={self.gat_heads}"
            )
        return self


class StstnetConfig(_Frozen):
    """STSTNet (Liong et al. 2019): three shallow parallel conv streams over the
    stacked (u, v, strain) 28 x 28 volume, filters 3, 5 and 8. The defaults are the
    authors' released code (christy1206/STSTNet, ``main.py``)."""

    input: Literal["megc2019_image", "store"] = Field(
        "megc2019_image", description="megc2019_image: the flow image as OpenCV reads it (channels strain, v, u, each "
        "min-max normalised per image to 0..255 and rounded; schemas.megc2019_image), the released input; store: the "
        "(u, v, strain) fields as the data path gives them (z-scored when DataConfig.normalise)"
    )
    layer_order: StreamOrder = Field(
        "conv_relu_bn", description="per stream: conv -> ReLU -> batch norm (conv_relu_bn, the released code) or "
        "conv -> batch norm -> ReLU (conv_bn_relu)"
    )
    input_size: int = Field(28, description="the paper's input side")
    stream_channels: tuple[int, int, int] = (3, 5, 8)
    kernel_size: int = 3
    padding: int = Field(2, description="as in the authors' released port: 28 -> 30")
    max_pool: int = Field(3, description="3x3 max-pool, stride 3, padding 1: 30 -> 10")
    avg_pool: int = Field(2, description="2x2 average pool: 10 -> 5")
    dropout: float = Field(0.5, ge=0, lt=1)
    focal_gamma: float = Field(0.0, ge=0, description="the paper trains with cross-entropy")
    class_weighting: ClassWeighting = "none"


class DataConfig(_Frozen):
    """Store-to-tensor path."""

    AUTO_WORKERS: ClassVar[int] = 2  # num_workers = auto with a GPU and more than AUTO_WORKERS usable cores

    scheme: str = Field(..., description="class scheme name in the store's class_schemes")
    keep_on_device_max_bytes: int = Field(
        512 * 2**20, ge=0, description="stores whose selected arrays fit under this are loaded once and kept on device"
    )
    num_workers: int | Literal["auto"] = Field(
        "auto", description="DataLoader worker processes when streaming (0 = a reader thread in the trainer); auto = "
        "0 when training on the CPU or with at most 2 usable cores (workers would take cores from the training "
        "step), else 2"
    )
    prefetch_factor: int = Field(2, ge=1)
    grid_rois: int = Field(
        4,
        ge=1,
        le=16,
        description="stores without ROI patches (e.g. the precomputed 28x28 composite) get a g x g grid of "
        "flow cells as ROI nodes with 4-neighbour edges and unit edge weights",
    )
    flip_probability: float = Field(
        0.5, ge=0, le=1, description="horizontal flip: mirrors the field, negates u, swaps left/right ROIs and AUs"
    )
    shift_pixels: int = Field(
        1, ge=0, le=8, description="training: translate each sample's flow field and strain by up to this many "
        "pixels (uniform per axis), as a face-alignment error would; ROI inputs stay; 0 = off"
    )
    normalise: bool = Field(True, description="z-score inputs with statistics of the training fold only")
    min_std: float = Field(1e-6, gt=0, description="channels flatter than this are only centred (std kept at 1)")


class TrainConfig(_Frozen):
    """The fit loop. Model selection never sees the test fold: fixed epochs,
    or an inner validation split carved from the training subjects."""

    model: Literal["stag", "ststnet"] = "stag"
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-3, ge=0)
    warmup_epochs: int = Field(2, ge=0, description="linear warm-up before the cosine decay")
    grad_clip: float = Field(1.0, gt=0)
    seeds: tuple[int, ...] = (1,)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(True, description="torch.autocast (bfloat16/float16) on CUDA; ignored on CPU")
    validation: Literal["none", "inner_subjects"] = Field(
        "none",
        description="none = train the fixed number of epochs; inner_subjects = hold out training subjects and "
        "keep the epoch with the best validation UF1",
    )
    validation_fraction: float = Field(0.15, gt=0, lt=1, description="share of training subjects held out")
    mixup_alpha: float = Field(
        0.0, ge=0, description="mixup (Zhang et al. 2018): mix pairs of training samples with weight ~ Beta(a, a) "
        "and their losses alike; flow fields superpose, so a mix is a plausible motion; 0 = off"
    )
    test_time_flip: bool = Field(
        True, description="average each test sample's probabilities with those of its horizontal mirror image"
    )
    threads: int = Field(0, ge=0, description="torch.set_num_threads on CPU; 0 = leave torch's default")
    parallel: Literal["auto", "vmap", "processes", "none"] = Field(
        "auto", description="how the folds of a protocol (and its seeds) train: vmap = all together as one "
        "computation (stag_model.fold_parallel; the GPU's way), processes = one fold per CPU core in worker "
        "processes (stag_model.fold_processes; the CPU's way), none = one after another in this process (the "
        "reference); auto = vmap on CUDA, processes on a CPU with more than one usable core, else none"
    )
    processes: int = Field(0, ge=0, description="parallel = processes: worker processes; 0 = the usable CPU cores")
    parallel_members: int = Field(
        0, ge=0, description="parallel = vmap: how many (fold, seed) models train together at a time; 0 = all"
    )
