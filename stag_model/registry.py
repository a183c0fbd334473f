"""The models stag trains, by name: one training loop, one evaluation path, and a new model is a
module plus an entry here.

An entry (`ModelEntry`) names the model's config section (the key of its config in the trainer's
``configs`` dict and its class in schemas/model_config.py), how to build it from the resolved inputs,
the inputs it reads (`InputRole`: its paper's input first, then the nearest inputs a store may give
instead), its published training set-up (`TrainingRecipe`, the defaults of TrainConfig when the model
is chosen) and whether the fold-parallel (vmap) path can train it.

Inputs. STAG and STSTNet read the flow fields every store has. TSFmicro and MEGANet read images
(schemas.store_spec.APPEARANCE_ARRAYS) that a video-pipeline store holds when it was ingested with
``appearance: {enabled: true}``. ``resolve_inputs`` picks, per role, the first candidate a store holds:

- the paper's input when the store has it;
- a store made by the video pipeline without it: an error naming the array and how to produce it
  (the pipeline can compute it; nothing is substituted for an input a re-ingest would give);
- a store whose producer cannot make it (precomputed flow images: the MEGC 2019 composite has no onset
  frame and no clip): the next candidate it holds, e.g. the flow image for the difference frame, the
  apex face for the onset frame. The substitution is recorded (``StoreSamples.inputs``) and every
  report names it (stag-fit's header, report.md, metrics.json, config.json).

``FLOW_IMAGE`` is a candidate every store holds: the flow fields of its K frames, (u, v, strain) each,
stacked as 3K channels at the flow's side (`stag_model.image_models.flow_image`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn
from pydantic import BaseModel

from schemas.model_config import (
    MeganetConfig,
    ModelConfig,
    StstnetConfig,
    TrainingRecipe,
    TsfmicroConfig,
)
from schemas.store_spec import (
    APEX_FACE,
    APEX_IMAGE,
    DIFFERENCE_IMAGE,
    DYNAMIC_IMAGE,
    MESTI_IMAGE,
    ONSET_IMAGE,
    OPTIONAL_BY_NAME,
)
from stag_model.baselines import Ststnet
from stag_model.data import StoreSamples, with_images
from stag_model.image_models import FLOW_FIELDS, FLOW_IMAGE, ImageModel
from stag_model.meganet import Meganet
from stag_model.model import Stag
from stag_model.tsfmicro import Tsfmicro

PIPELINE_PRODUCER = "pipeline"  # stores of this producer can compute every appearance array
N_ROI_STATS = 5  # STAG's ROI statistics as the data path gives them (direction as cos, sin)
HOW_TO_PRODUCE = ("ingest the clips with `appearance: {enabled: true}` in the pipeline config (stag-ingest --config "
                  "FILE; an existing store is rebuilt with --force)")


@dataclass(frozen=True)
class Candidate:
    """One input a role may read: a store array (or ``FLOW_IMAGE``), and what it stands in for ("" = the
    paper's own input)."""

    array: str
    substitution: str = ""


@dataclass(frozen=True)
class InputRole:
    """A named input of a model (the keyword its network's forward takes), the paper's input first."""

    role: str
    paper: str  # the paper's input, in words
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class ResolvedInput:
    """What a role reads in this run; ``substitution`` is "" when it is the paper's input."""

    role: str
    paper: str
    array: str
    substitution: str

    def describe(self) -> str:
        said = f"{self.role} <- {self.array}"
        return f"{said} (SUBSTITUTED: {self.substitution})" if self.substitution else f"{said} ({self.paper})"

    def as_json(self) -> dict:
        return {"role": self.role, "paper_input": self.paper, "array": self.array,
                "substitution": self.substitution or None}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    section: str  # key of the model's config in ``configs``
    config_class: type[BaseModel]
    build: Callable[[BaseModel, int, StoreSamples, dict[str, int]], nn.Module]  # config, classes, samples, channels
    roles: Callable[[BaseModel], tuple[InputRole, ...]] = lambda _config: ()
    recipe: Callable[[BaseModel], TrainingRecipe | None] = lambda _config: None
    vmap: bool = False  # stag_model.fold_parallel can train it
    describe: Callable[[BaseModel, int], str] = lambda _config, n: f"{n} classes"


def _flow_substitute(what: str) -> Candidate:
    return Candidate(FLOW_IMAGE, f"the store's flow fields (u, v, strain of each of its frames) in place of {what}")


def _tsfmicro_roles(config: TsfmicroConfig) -> tuple[InputRole, ...]:
    """The inputs of the branches that are on (Table 6's W/O S reads no onset frame, W/O T no difference)."""
    roles = []
    if config.temporal_branch:
        roles.append(InputRole("difference", "the onset-to-apex difference frame (TSFmicro eq. 1)",
                               (Candidate(DIFFERENCE_IMAGE), _flow_substitute("the difference frame"))))
    if config.spatial_branch:
        roles.append(InputRole("onset", "the aligned onset frame", (
            Candidate(ONSET_IMAGE), Candidate(APEX_FACE, "the apex face in place of the onset frame"))))
    return tuple(roles)


MEGANET_INPUTS = {  # MeganetConfig.input -> (paper's words, candidates)
    "mesti": ("the MESTI image of the clip", (Candidate(MESTI_IMAGE), _flow_substitute("the MESTI image"))),
    "apex": ("the aligned apex frame", (Candidate(APEX_IMAGE), Candidate(APEX_FACE, "the store's apex face crop "
                                                                                   "in place of the apex frame"))),
    "flow": ("the onset-to-apex optical flow", (Candidate(FLOW_IMAGE),)),
    "dynamic_image": ("the dynamic image of the clip", (Candidate(DYNAMIC_IMAGE),
                                                        _flow_substitute("the dynamic image"))),
}


def _meganet_roles(config: MeganetConfig) -> tuple[InputRole, ...]:
    paper, candidates = MEGANET_INPUTS[config.input]
    return (InputRole("image", paper, candidates),)


def _build_tsfmicro(config: TsfmicroConfig, n: int, samples: StoreSamples, channels: dict[str, int]) -> nn.Module:
    net = Tsfmicro(config, n, in_channels=channels.get("difference", 1), spatial_channels=channels.get("onset"))
    return ImageModel(net, _arrays(samples), n, config.class_weighting)


def _build_meganet(config: MeganetConfig, n: int, samples: StoreSamples, channels: dict[str, int]) -> nn.Module:
    return ImageModel(Meganet(config, n, in_channels=channels["image"]), _arrays(samples), n, config.class_weighting)


def _arrays(samples: StoreSamples) -> dict[str, str]:
    return {r.role: r.array for r in samples.inputs}


MODELS: dict[str, ModelEntry] = {
    "stag": ModelEntry(
        "stag", "model", ModelConfig,
        lambda c, n, s, _ch: Stag(c, n, n_aus=len(s.graph.au_names), n_roi_stats=N_ROI_STATS), vmap=True,
        describe=lambda m, n: f"d_model {m.d_model}, frame encoder {m.frame_encoder}"
                              f"{f' x {m.frame_encoders}' if m.frame_encoders > 1 else ''}, {m.frame_stream_order}, "
                              f"{n} classes"),
    "ststnet": ModelEntry(
        "ststnet", "ststnet", StstnetConfig, lambda c, n, _s, _ch: Ststnet(c, n), vmap=True,
        describe=lambda s, n: f"streams {list(s.stream_channels)}, {s.layer_order}, input {s.input}, frame "
                              f"{s.frame}, {n} classes"),
    "tsfmicro": ModelEntry(
        "tsfmicro", "tsfmicro", TsfmicroConfig, _build_tsfmicro, roles=_tsfmicro_roles, recipe=lambda c: c.recipe,
        describe=lambda t, n: f"fusion {t.fusion}, grid {t.grid}, d_model {t.d_model}, retention "
                              f"{t.retention.layers}x{t.retention.heads} ({t.retention.decay}), {n} classes"),
    "meganet": ModelEntry(
        "meganet", "meganet", MeganetConfig, _build_meganet, roles=_meganet_roles,
        describe=lambda m, n: f"input {m.input} at {m.input_size} px, stages {list(m.stage_channels)}, gradient "
                              f"attention {'on' if m.gradient_attention else 'off'}, {n} classes"),
}


def entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ValueError listing the known names otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def section_config(configs: dict, name: str | None = None) -> BaseModel:
    """The config of the model ``name`` (default: the one ``configs["train"]`` names), its defaults when
    ``configs`` has no such section (configs written before the model existed)."""
    e = entry(name or configs["train"].model)
    return configs.get(e.section) or e.config_class()


def default_configs() -> dict:
    """Every model's config section at its defaults, by section key (what ``configs`` holds beside train/data)."""
    return {e.section: e.config_class() for e in MODELS.values()}


def recipe_defaults(name: str, config: BaseModel | None = None) -> dict:
    """TrainConfig fields a model's published training set-up sets (empty without one): its learning rate,
    weight decay, schedule (no warm-up), epochs and batch size."""
    e = entry(name)
    recipe = e.recipe(config or e.config_class())
    if recipe is None:
        return {}
    schedule = {"exponential": "exponential", "cosine": "warmup_cosine", "constant": "constant"}[recipe.schedule]
    return {"learning_rate": recipe.learning_rate, "weight_decay": recipe.weight_decay, "schedule": schedule,
            "lr_gamma": recipe.lr_gamma, "warmup_epochs": 0, "epochs": recipe.epochs, "batch_size": recipe.batch_size}


def _held(reader) -> set[str]:
    return {*reader.metadata.layout.extra_arrays, FLOW_IMAGE}


def resolve_inputs(name: str, config: BaseModel, samples: StoreSamples) -> tuple[ResolvedInput, ...]:
    """The array each input role of the model reads from every store of ``samples`` (module docstring);
    ValueError naming the store, the array and how to produce it when a store cannot give a role its input."""
    resolved = []
    for role in entry(name).roles(config):
        wanted = role.candidates[0].array
        chosen = set()
        for reader in samples.readers:
            held = _held(reader)
            if wanted not in held and reader.metadata.producer == PIPELINE_PRODUCER:
                raise ValueError(f"store {reader.path} lacks the array {wanted!r} that {name} reads as its {role.role} "
                                 f"input ({role.paper}); to produce it, {HOW_TO_PRODUCE}")
            found = next((c for c in role.candidates if c.array in held), None)
            if found is None:
                raise ValueError(f"store {reader.path} (producer {reader.metadata.producer}) holds none of "
                                 f"{[c.array for c in role.candidates]} that {name} can read as its {role.role} input "
                                 f"({role.paper}); a store made from clips gets {wanted!r} when you {HOW_TO_PRODUCE}")
            chosen.add(found)
        if len(chosen) > 1:
            raise ValueError(f"the stores give {name}'s {role.role} input from different arrays "
                             f"({sorted(c.array for c in chosen)}); train them separately")
        pick = chosen.pop()
        resolved.append(ResolvedInput(role.role, role.paper, pick.array, pick.substitution))
    return tuple(resolved)


def prepare_samples(samples: StoreSamples, configs: dict) -> StoreSamples:
    """``samples`` set up for the model ``configs["train"]`` names: its inputs resolved (substitutions
    recorded) and the image arrays they need read with the features."""
    name = configs["train"].model
    inputs = resolve_inputs(name, section_config(configs, name), samples)
    images = tuple(dict.fromkeys(r.array for r in inputs if r.array != FLOW_IMAGE))
    return with_images(samples, images, inputs, configs["data"]) if inputs else samples


def input_channels(samples: StoreSamples) -> dict[str, int]:
    """Channels of each resolved input role: 3 per frame for the flow image, else the store array's."""
    channels = {}
    for r in samples.inputs:
        if r.array == FLOW_IMAGE:
            channels[r.role] = FLOW_FIELDS * samples.frames
            continue
        layout = samples.readers[0].metadata.layout
        dims = OPTIONAL_BY_NAME[r.array].dims
        channels[r.role] = layout.dim_sizes()[dims[1]] if len(dims) == 4 else 1
    return channels


def build(configs: dict, samples: StoreSamples) -> nn.Module:
    """The model ``configs["train"]`` names, for ``samples`` (whose inputs ``prepare_samples`` resolved)."""
    name = configs["train"].model
    e = entry(name)
    if e.roles(section_config(configs, name)) and not samples.inputs:
        raise ValueError(f"model {name} reads images: set the samples up with stag_model.registry.prepare_samples")
    return e.build(section_config(configs, name), len(samples.class_names), samples, input_channels(samples))


def architecture(configs: dict, n_classes: int) -> str:
    """A one-line description of the model the configs build."""
    name = configs["train"].model
    return f"{name} ({entry(name).describe(section_config(configs, name), n_classes)})"


def inputs_line(samples: StoreSamples) -> str:
    """The resolved inputs in one line ("" for flow-only models), substitutions named."""
    return "; ".join(r.describe() for r in samples.inputs)

