"""Image models (TSFmicro, MEGANet) in the trainer's framework: a network whose ``forward`` takes named
images, wrapped so that it reads a `StagBatch` and trains like STAG (class weights, loss, the AU prior
hook).

Each input role (a keyword of the network's forward, e.g. TSFmicro's ``difference`` and ``onset``) reads
one array: an image array of the store, carried in ``StagBatch.images`` (B, C, S, S), or ``FLOW_IMAGE``,
the flow fields of the store's K frames stacked as channels, (u, v, strain) per frame in frame order
(B, 3K, H, W), made from the batch's flow after normalisation and augmentation. Every frame, in its
store's order, rather than the frame of largest motion: in a store whose frames are phases (the
composite's onset-apex and apex-offset flow) the largest one changes phase, and its sign, from sample to
sample (the two are compared on the design folds in docs/evaluation.md).
stag_model.registry resolves which array each role reads.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from stag_model.model import StagBatch, focal_loss

FLOW_IMAGE = "flow"  # the role reads the flow fields of every frame, (u, v, strain) each
FLOW_FIELDS = 3  # channels per frame of the flow image: u, v, strain


def flow_image(b: StagBatch) -> torch.Tensor:
    """(B, 3K, H, W): (u, v, strain) of each of the K frames, in frame order; padded frames are zero."""
    fields = torch.cat([b.flow, b.strain[:, :, None]], 2)  # (B, K, 3, H, W)
    fields = fields * b.frame_mask[:, :, None, None, None].to(fields.dtype)
    return fields.flatten(1, 2)  # (B, 3K, H, W)


def role_image(b: StagBatch, array: str) -> torch.Tensor:
    """The (B, C, S, S) image a role reads from the batch: ``b.images[array]`` or the flow image."""
    if array == FLOW_IMAGE:
        return flow_image(b).float()  # (B, 3K, H, W)
    return b.images[array].float()


class ImageModel(nn.Module):
    """``forward(batch, targets, valid)`` returns ``logits, loss`` like `Stag`; the network is ``net``.
    The loss is (class-weighted, when ``class_weighting`` is not "none") cross-entropy."""

    def __init__(self, net: nn.Module, arrays: dict[str, str], n_classes: int, class_weighting: str):
        super().__init__()
        self.net, self.arrays, self.weighted = net, dict(arrays), class_weighting != "none"
        self.register_buffer("class_weights", torch.ones(n_classes), persistent=True)

    def set_class_weights(self, weights: torch.Tensor) -> None:
        self.class_weights.copy_(weights)

    def set_au_prior(self, prior: torch.Tensor) -> None:
        """Image models use no AU input; accepted so the trainer treats models alike."""

    def images(self, b: StagBatch) -> dict[str, torch.Tensor]:
        """Each role's (B, C, S, S) input."""
        return {role: role_image(b, array) for role, array in self.arrays.items()}

    def forward(self, b: StagBatch, targets: torch.Tensor | None = None, valid: torch.Tensor | None = None):
        logits = self.net(**self.images(b))  # (B, C)
        return logits, (self.criterion(logits, targets, valid) if targets is not None else None)

    def saliency(self, b: StagBatch) -> dict[str, torch.Tensor]:
        """Per role, |d logit of the predicted class / d input| summed over channels (Simonyan et al. 2014):
        where in each input a change moves the decision most. (B, S, S) per role; gradients are taken here
        even under ``torch.no_grad``."""
        with torch.enable_grad():
            images = {role: image.detach().requires_grad_(True) for role, image in self.images(b).items()}
            logits = self.net(**images)  # (B, C)
            logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
        return {role: image.grad.abs().sum(1) if image.grad is not None else torch.zeros_like(image[:, 0])
                for role, image in images.items()}  # (B, S, S); zero where the network ignores the input

    def criterion(self, logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return focal_loss(logits, targets, 0.0, self.class_weights if self.weighted else None, valid=valid)
