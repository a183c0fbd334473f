"""Per-fold checkpoints: reading them safely, and whether one fits a store.

A checkpoint is ``{"state_dict": {name: tensor}, "metadata": {...}}`` in plain python
(``stag_model.train.fold_result`` fills the metadata: model, fold, seed, configs, class,
ROI and AU names, edges, normaliser, training and test subjects; ``stag_model.report``
adds ``input``, the flow units and sizes of the stores it was trained on).

- `load_file` reads with ``torch.load(weights_only=True)``: tensors and plain values only.
  A pickle that would call anything else (``os.system``, a class's constructor) is refused
  before any of it runs, with the callable named.
- `restore` rebuilds the model a checkpoint describes and loads its weights; weights that do
  not fit that architecture are refused with both shapes named.
- `check_fits` refuses a checkpoint whose classes, ROI graph or input convention differ from
  the samples it is asked to predict, naming both sides.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from pydantic import ValidationError

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_model import registry
from stag_model.data import Normaliser, StoreSamples
from stag_model.train import build_model

# Config fields added after checkpoints were first written, with the value the code used before they
# existed: a checkpoint that lacks one was trained that way, whatever the field's default is now.
FIELDS_BEFORE_RECORDED = {"model": {"frame_stream_order": "conv_bn_relu"},
                          "ststnet": {"layer_order": "conv_bn_relu", "input": "store"}}
CONFIG_CLASSES = {"train": TrainConfig, "model": ModelConfig, "ststnet": StstnetConfig, "data": DataConfig}
REQUIRED_SECTIONS = ("train", "model", "ststnet", "data")  # every checkpoint records these; other models' sections
# (stag_model.registry) are recorded since those models exist, and read at their defaults where absent


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message names the file and what does not match."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    state_dict: dict[str, torch.Tensor]
    metadata: dict


def load_file(path: Path) -> object:
    """The object saved at ``path``, read with ``torch.load(weights_only=True)`` onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"call {found.group(1)}" if found else "build objects other than tensors and plain values"
        raise CheckpointError(f"{path}: refused, its pickle would {what} when loaded; stag reads tensors and plain "
                              "values only (torch.load weights_only=True) and ran nothing of it") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({first})") from None


def read_checkpoint(path: Path) -> Checkpoint:
    """A stag-fit checkpoint: ``{"state_dict", "metadata"}``."""
    saved = load_file(path)
    if not (isinstance(saved, dict) and isinstance(saved.get("state_dict"), dict)
            and isinstance(saved.get("metadata"), dict)):
        keys = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
        raise CheckpointError(f"{path} is not a stag-fit checkpoint ({{'state_dict', 'metadata'}}); it holds {keys}")
    return Checkpoint(Path(path), saved["state_dict"], saved["metadata"])


def configs_of(checkpoint: Checkpoint, scheme: str | None = None) -> dict:
    """The train / model / ststnet / data configs a checkpoint was trained with (``scheme`` replaces the data
    config's); fields it predates take the value the code used then (``FIELDS_BEFORE_RECORDED``)."""
    recorded = checkpoint.metadata.get("configs")
    if not isinstance(recorded, dict) or set(REQUIRED_SECTIONS) - set(recorded):
        raise CheckpointError(f"{checkpoint.path}: its metadata lacks the configs {sorted(REQUIRED_SECTIONS)}")
    configs = {}
    classes = {**CONFIG_CLASSES, **{e.section: e.config_class for e in registry.MODELS.values()}}
    for name, cls in classes.items():
        if name not in recorded:
            continue
        values = {**FIELDS_BEFORE_RECORDED.get(name, {}), **recorded[name]}
        if name == "data" and scheme:
            values["scheme"] = scheme
        try:
            configs[name] = cls(**values)
        except ValidationError as exc:
            raise CheckpointError(f"{checkpoint.path}: its {name} config does not validate with this version of "
                                  f"stag: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    return configs


def architecture(configs: dict, n_classes: int) -> str:
    """A one-line description of the model the configs build."""
    return registry.architecture(configs, n_classes)


def restore(checkpoint: Checkpoint, configs: dict, samples: StoreSamples, device: torch.device
            ) -> tuple[nn.Module, Normaliser | None]:
    """The model of ``configs`` with the checkpoint's weights, in eval mode on ``device``, and its normaliser."""
    model = build_model(configs["train"], configs["model"], configs["ststnet"], samples, configs)
    expected = model.state_dict()
    given = checkpoint.state_dict
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(given[k].shape)}, model {tuple(v.shape)}" for k, v in expected.items()
              if k in given and tuple(given[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = ([f"missing {missing[:4]}"] if missing else []) + ([f"unexpected {unexpected[:4]}"] if unexpected
                                                                   else []) + shapes[:3]
        raise CheckpointError(f"{checkpoint.path}: its weights do not fit the architecture it names, "
                              f"{architecture(configs, len(samples.class_names))}: " + "; ".join(parts))
    model.load_state_dict(given)
    state = checkpoint.metadata.get("normaliser")
    normaliser = None
    if state:
        as_tensors = lambda d: {k: torch.tensor(v, dtype=torch.float32) for k, v in d.items()}  # noqa: E731
        normaliser = Normaliser(as_tensors(state["mean"]), as_tensors(state["std"]))
    return model.to(device).eval(), normaliser


def store_input(samples: StoreSamples) -> dict:
    """What a model trained on these samples was given: the stores' flow units, K, H and W."""
    layouts = [r.metadata.layout for r in samples.readers]
    return {"flow_units": sorted({r.metadata.flow_units for r in samples.readers}),
            "producers": sorted({r.metadata.producer for r in samples.readers}),
            "frames": layouts[0].frames, "height": layouts[0].height, "width": layouts[0].width}


def input_convention(configs: dict, metadata: dict) -> str | None:
    """The flow units a checkpoint's input depends on (None: any units, the model normalises each image)."""
    if configs["train"].model == "ststnet" and configs["ststnet"].input == "megc2019_image":
        return None
    recorded = metadata.get("input", {}).get("flow_units")
    return " + ".join(recorded) if recorded else None


def check_fits(checkpoint: Checkpoint, configs: dict, samples: StoreSamples) -> None:
    """Refuse a checkpoint whose classes, ROI graph or input units differ from ``samples``'."""
    meta, where = checkpoint.metadata, checkpoint.path
    classes = tuple(meta.get("class_names", ()))
    if classes != tuple(samples.class_names):
        raise CheckpointError(f"{where} predicts the classes {list(classes)}, but scheme {configs['data'].scheme!r} "
                              f"of the store(s) has {list(samples.class_names)}")
    units = input_convention(configs, meta)
    store_units = " + ".join(store_input(samples)["flow_units"])
    if units is not None and units != store_units:
        raise CheckpointError(f"{where}: its model ({architecture(configs, len(classes))}) was trained on flow in "
                              f"units {units!r}, but {', '.join(map(str, samples.paths))} hold flow in units "
                              f"{store_units!r}; its normalisation and weights do not carry over")
    trained_on = [(i.get("role"), i.get("array")) for i in meta.get("inputs", [])]
    given = [(r.role, r.array) for r in samples.inputs]
    if trained_on != given:
        raise CheckpointError(f"{where} was trained on the inputs {trained_on} (role, array), but the store(s) give "
                              f"{given}; a model's weights do not carry over to another input")
    if configs["train"].model == "stag":
        graph = samples.graph
        theirs = (tuple(meta.get("roi_names", ())), tuple(meta.get("au_names", ())),
                  np.asarray(meta.get("edge_index", []), dtype=np.int64).reshape(-1, 2).tolist())
        ours = (graph.roi_names, graph.au_names, graph.edge_index.tolist())
        if theirs != ours:
            raise CheckpointError(f"{where} was trained on a graph of {len(theirs[0])} ROIs, {len(theirs[1])} AUs and "
                                  f"{len(theirs[2])} edges ({', '.join(theirs[0][:4])}, ...), but the store(s) give "
                                  f"{len(ours[0])} ROIs, {len(ours[1])} AUs and {len(ours[2])} edges "
                                  f"({', '.join(ours[0][:4])}, ...)")
