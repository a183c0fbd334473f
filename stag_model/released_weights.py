"""Per-fold weights released with a paper, read as stag checkpoints.

STSTNet (christy1206/STSTNet): ``STSTNet_Weights/<subject>.pth``, one leave-one-subject-out
fold of the MEGC 2019 composite per subject (the subjects listed in ``video442subName.txt``),
each the state dict of the released ``STSTNet`` module:

    conv1, conv2, conv3   Conv2d(3 -> 3, 5, 8; 3 x 3, padding 2)
    bn1, bn2, bn3         BatchNorm2d(3, 5, 8)
    fc                    Linear(5 * 5 * 16 -> 3)

Parameter names map one to one onto stag's `Ststnet`: ``conv<i>`` -> ``streams.<i-1>.conv``,
``bn<i>`` -> ``streams.<i-1>.bn``, ``fc`` -> ``fc``; its ``class_weights`` buffer (used only by
the training loss) is ones. The released forward pass is conv -> ReLU -> batch norm per stream
(``StstnetConfig.layer_order = "conv_relu_bn"``) on the flow image as OpenCV reads it
(strain, v, u; 0..255; ``input = "megc2019_image"``), classes 0 negative, 1 positive, 2 surprise.
It was trained with Adam (learning rate 5e-5), batches of 256, 800 epochs, cross-entropy, no
augmentation or normalisation; its predictions are the last epoch's, without test-time flip.
The configs below record that, so ``stag evaluate`` predicts exactly as the released code did.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_model.baselines import Ststnet
from stag_model.checkpoints import Checkpoint, CheckpointError, load_file

RELEASE_CLASSES = ("negative", "positive", "surprise")  # main.py's label_dict
RELEASE_SCHEME = "megc2019-3"
RELEASE_SEED = 0  # the release is one training run; its predictions are listed under seed 0
SUBJECT_LIST = "video442subName.txt"  # beside the weights folder in the release
NAME_MAP = ((re.compile(r"conv([1-3])\.(weight|bias)"), "streams.{i}.conv.{rest}"),
            (re.compile(r"bn([1-3])\.(weight|bias|running_mean|running_var|num_batches_tracked)"), "streams.{i}.bn.{rest}"),
            (re.compile(r"fc\.(weight|bias)"), "fc.{rest}"))


def ststnet_release_configs(scheme: str = RELEASE_SCHEME) -> dict:
    """The configs of the released STSTNet: its architecture, input and training, for stag's model and reports."""
    return {
        "train": TrainConfig(model="ststnet", epochs=800, batch_size=256, learning_rate=5e-5, weight_decay=0.0,
                             warmup_epochs=0, seeds=(RELEASE_SEED,), test_time_flip=False, amp=False),
        "model": ModelConfig(),
        "ststnet": StstnetConfig(input="megc2019_image", layer_order="conv_relu_bn", class_weighting="none"),
        "data": DataConfig(scheme=scheme, normalise=False, flip_probability=0.0, shift_pixels=0),
    }


def _stag_name(name: str) -> str | None:
    for pattern, template in NAME_MAP:
        found = pattern.fullmatch(name)
        if found:
            groups = found.groups()
            index = int(groups[0]) - 1 if len(groups) == 2 else None
            return template.format(i=index, rest=groups[-1])
    return None


def ststnet_state_dict(released: object, path: Path) -> dict[str, torch.Tensor]:
    """The released state dict under stag's `Ststnet` names; refuses one whose names or shapes differ
    from the released architecture, naming both."""
    if not isinstance(released, dict) or not all(isinstance(v, torch.Tensor) for v in released.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors (it holds {type(released).__name__}); "
                              "the STSTNet release is one state dict per subject")
    reference = Ststnet(ststnet_release_configs()["ststnet"], len(RELEASE_CLASSES)).state_dict()
    mapped, unknown = {}, []
    for name, tensor in released.items():
        stag_name = _stag_name(name)
        if stag_name is None:
            unknown.append(name)
        else:
            mapped[stag_name] = tensor
    missing = sorted(k for k in reference if k != "class_weights" and k not in mapped)
    shapes = [f"{name}: found {tuple(t.shape)}, STSTNet has {tuple(reference[s].shape)}"
              for name, t in released.items() if (s := _stag_name(name)) and tuple(t.shape) != tuple(reference[s].shape)]
    if unknown or missing or shapes:
        parts = ([f"parameters STSTNet does not have: {unknown[:4]}"] if unknown else []) + (
            [f"missing: {missing[:4]}"] if missing else []) + shapes[:3]
        raise CheckpointError(f"{path} is not a released STSTNet (conv1-3 of 3, 5, 8 filters of 3 x 3, bn1-3, "
                              f"fc 400 -> 3): " + "; ".join(parts))
    mapped["class_weights"] = torch.ones(len(RELEASE_CLASSES))
    return mapped


def release_metadata(subject: str, scheme: str) -> dict:
    """A stag checkpoint's metadata for the released fold that held out ``subject``."""
    return {
        "model": "ststnet", "fold": subject, "seed": RELEASE_SEED, "epochs_kept": 800,
        "configs": {k: v.model_dump(mode="json") for k, v in ststnet_release_configs(scheme).items()},
        "class_names": list(RELEASE_CLASSES), "normaliser": None, "test_subjects": [subject],
        "origin": "STSTNet weights released by its authors (christy1206/STSTNet)",
        "input": {"convention": "megc2019_image"},
    }


@dataclass(frozen=True)
class StstnetRelease:
    """The release's weights folder: one ``<subject>.pth`` per fold, for the subjects of its list."""

    folder: Path
    subjects: tuple[str, ...]  # in the release's order
    subject_list: Path | None  # where that order came from (None: the .pth names, sorted)

    @classmethod
    def open(cls, folder: Path, subject_list: Path | None = None) -> "StstnetRelease":
        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError(f"weights folder {folder} not found")
        listed = subject_list or (folder.parent / SUBJECT_LIST)
        if subject_list is not None and not Path(subject_list).is_file():
            raise CheckpointError(f"subject list {subject_list} not found")
        if Path(listed).is_file():
            subjects = tuple(s.strip() for s in Path(listed).read_text().splitlines() if s.strip())
            return cls(folder, subjects, Path(listed))
        subjects = tuple(sorted(p.stem for p in folder.glob("*.pth")))
        if not subjects:
            raise CheckpointError(f"{folder} holds no <subject>.pth weights (and no {SUBJECT_LIST} beside it)")
        return cls(folder, subjects, None)

    def path(self, subject: str) -> Path:
        return self.folder / f"{subject}.pth"

    def missing(self, subjects: list[str]) -> list[str]:
        """Of ``subjects``, those without weights in the folder."""
        return [s for s in subjects if not self.path(s).is_file()]

    def load(self, subject: str, scheme: str) -> Checkpoint:
        """The fold of ``subject`` as a stag checkpoint (read with weights_only=True, names mapped)."""
        path = self.path(subject)
        return Checkpoint(path, ststnet_state_dict(load_file(path), path), release_metadata(subject, scheme))
