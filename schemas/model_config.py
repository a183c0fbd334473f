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
    frame_encoders: int = Field(
        1, ge=1, le=16, description="frame CNNs with their own weights: 1 = one shared by every frame; n = frame k "
        "has CNN min(k, n - 1) (the composite's two phases, contraction and relaxation, run in opposite directions)"
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
    frame: Literal["largest_motion", "first"] = Field(
        "largest_motion", description="which of a sample's K frames it reads: the one of largest mean flow magnitude "
        "(the apex of a clip's selected frames), or the first (the onset -> apex phase of the two-phase composite, "
        "whose apex -> offset phase runs the other way)"
    )
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

    model: str = Field(
        "stag", description="a name of the model registry (stag_model.registry.MODELS): stag, ststnet, tsfmicro, "
        "meganet; a model with a published training set-up (TrainingRecipe) brings its own defaults for the fields "
        "below, which explicit values override",
    )
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-3, ge=0)
    schedule: Literal["warmup_cosine", "exponential", "constant"] = Field(
        "warmup_cosine", description="learning-rate factor per step: warmup_cosine = linear warm-up over "
        "warmup_epochs, then cosine decay to 0; exponential = warm-up, then lr_gamma ** (epochs done since); "
        "constant = warm-up, then 1",
    )
    lr_gamma: float = Field(0.95, gt=0, le=1, description="exponential schedule: factor per epoch")
    warmup_epochs: int = Field(2, ge=0, description="linear warm-up before the decay")
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


# -- the other seed systems of issue 25: TSFmicro and MESTI-MEGANet -------------------------------------------------
TsfmicroFusion = Literal["early", "t_to_s", "s_to_t", "late"]
MeganetInput = Literal["mesti", "apex", "flow", "dynamic_image"]


class TrainingRecipe(_Frozen):
    """A model's training set-up as its paper publishes it: the trainer's defaults for that model."""

    optimizer: Literal["adamw", "adam"] = "adamw"
    learning_rate: float = Field(..., gt=0)
    weight_decay: float = Field(..., ge=0)
    schedule: Literal["exponential", "cosine", "constant"] = Field(
        ..., description="exponential: lr x lr_gamma after each epoch; cosine: to 0 over the epochs; constant"
    )
    lr_gamma: float = Field(1.0, gt=0, le=1, description="exponential schedule: factor per epoch")
    epochs: int = Field(..., ge=1)
    batch_size: int = Field(..., ge=1)


class RetentionConfig(_Frozen):
    """Multi-scale retention (RetNet, Sun et al. 2023; stag_model.retention) over a model's tokens."""

    layers: int = Field(2, ge=1, le=12, description="retention blocks (TSFmicro's paper: 5)")
    heads: int = Field(4, ge=1, le=16, description="heads, each with its own decay gamma_h")
    decay_offset: float = Field(
        5.0, gt=0, le=16, description="gamma_h = 1 - 2^(-decay_offset - h), h = 0..heads-1 (RetNet's 5)"
    )
    decay: Literal["causal", "manhattan"] = Field(
        "causal",
        description="causal: D_nm = gamma^(n - m) for m <= n over the tokens in raster order (RetNet; TSFmicro "
        "eq. 2), with a recurrent form; manhattan: D_nm = gamma^(|row_n - row_m| + |col_n - col_m|) over the token "
        "grid (RMT, Fan et al. 2024, which TSFmicro cites), parallel form only",
    )
    rotation: bool = Field(True, description="rotate q and k by position (the e^{i n theta} of eq. 2)")
    rotation_base: float = Field(10000.0, gt=1, description="theta_j = base^(-2j / head_dim)")
    feedforward_mult: int = Field(2, ge=1, le=8, description="feed-forward width = this x d_model")
    dropout: float = Field(0.1, ge=0, lt=1)
    norm_eps: float = Field(1e-5, gt=0, description="eps of the per-head group norm and the layer norms")


class TsfmicroConfig(_Frozen):
    """TSFmicro (Liu, Nan, Qian, Fu; ../shared/papers/tsfmicro_paper.md): a temporal branch with retention over
    the onset-to-apex difference frame, a shallow spatial branch (patches + learned position embedding + two
    transformer blocks) over the onset frame, fused on a common token grid. Widths are smaller than the
    paper's (512, 1024 at 224 px) so that 28-64 px inputs train on a CPU."""

    input_size: int = Field(28, ge=8, le=256, description="both inputs are resized to this side")
    grid: int = Field(
        7, ge=2, le=64, description="token grid side of both branches (the paper's 14 at 224 px); input_size / grid "
        "must be a power of 2: the conv stem halves it that many times, the spatial patches have that side. 7 at "
        "28 px: 4 x 4 patches, 49 tokens; a batch of 32 trains in 0.06 s on one CPU thread against 0.34 s on the "
        "14 x 14 grid (196 tokens), the difference between a 68-fold LOSO in tens of minutes and in hours here",
    )
    d_model: int = Field(64, ge=8, le=1024, description="token width of both branches (the paper's 512)")
    temporal_branch: bool = Field(True, description="retention over the difference frame (off: Table 6, W/O T)")
    spatial_branch: bool = Field(True, description="transformer over the onset patches (off: Table 6, W/O S)")
    fusion: TsfmicroFusion = Field(
        "late",
        description="early: stem(difference) + patches(onset) -> retention -> transformer; t_to_s: retention("
        "difference) + patches(onset) -> transformer; s_to_t: transformer(onset) + stem(difference) -> retention; "
        "late: retention(difference) + transformer(onset) (the paper's best, eq. 9)",
    )
    retention: RetentionConfig = RetentionConfig()
    spatial_layers: int = Field(2, ge=1, le=12, description="transformer blocks of the spatial branch (paper: 2)")
    spatial_heads: int = Field(4, ge=1, le=16)
    feedforward_mult: int = Field(2, ge=1, le=8, description="spatial blocks: feed-forward width = this x d_model")
    head_width: int = Field(128, ge=8, le=4096, description="fully connected layer on the fused tokens (paper: 1024)")
    dropout: float = Field(0.1, ge=0, lt=1)
    class_weighting: ClassWeighting = Field("none", description="the paper trains with plain cross-entropy")
    recipe: TrainingRecipe = Field(
        TrainingRecipe(optimizer="adamw", learning_rate=8e-4, weight_decay=0.05, schedule="exponential",
                       lr_gamma=0.95, epochs=50, batch_size=32),
        description="section 4.1.3: AdamW, lr 8e-4, batch 32, exponential decay over 50 epochs; weight decay and "
        "the decay factor are unpublished (0.05; 0.95 per epoch leaves 8% of the rate after 50 epochs)",
    )

    @model_validator(mode="after")
    def _check(self) -> "TsfmicroConfig":
        patch = self.input_size // self.grid
        if self.input_size % self.grid or patch & (patch - 1):
            raise ValueError(f"input_size {self.input_size} / grid {self.grid} must be a whole power of 2")
        if not (self.temporal_branch or self.spatial_branch):
            raise ValueError("temporal_branch and spatial_branch are both off: the model would see no input")
        if self.d_model % self.retention.heads or self.d_model % self.spatial_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by retention.heads {self.retention.heads} "
                             f"and spatial_heads {self.spatial_heads}")
        return self


class MeganetConfig(_Frozen):
    """MEGANet (MESTI-MEGANet, arXiv 2509.00056): a small CNN whose stages each end in a Gradient Attention
    block (stag_model.gradient_attention; the block's design is ours, the paper publishes none), over one
    image. Its training set-up is unpublished: the trainer's TrainConfig applies."""

    input: MeganetInput = Field(
        "mesti", description="the image it reads: mesti (the paper's), apex face, onset-to-apex flow or dynamic image"
    )
    input_size: int = Field(
        28, ge=8, le=256, description="the input is resized to this side; 28 px, the side of the MEGC 2019 flow "
        "images: a batch of 32 trains in 0.03 s on one CPU thread (0.14 s at 64 px)",
    )
    stage_channels: tuple[int, ...] = Field((16, 32, 64), description="conv width of each stage (one 2x pool each)")
    convs_per_stage: int = Field(1, ge=1, le=4, description="conv-BN-ReLU layers per stage")
    gradient_attention: bool = Field(True, description="a Gradient Attention block ends each stage; off = ablation")
    attention_kernel: int = Field(3, ge=1, le=9, description="depthwise conv side over the gradient magnitudes (odd)")
    gradient_eps: float = Field(1e-6, gt=0, description="|grad| = sqrt(gx^2 + gy^2 + eps): smooth at 0")
    dropout: float = Field(0.3, ge=0, lt=1, description="before the classifier")
    class_weighting: ClassWeighting = "none"

    @model_validator(mode="after")
    def _check(self) -> "MeganetConfig":
        if self.attention_kernel % 2 == 0:
            raise ValueError(f"attention_kernel {self.attention_kernel} must be odd ('same' padding)")
        return self
