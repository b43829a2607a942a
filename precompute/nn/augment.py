"""Training-time image transforms built from the `[train] augment` names."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision.transforms import v2

from precompute.nn.backbones import CROP_RATIO, Backbone

# Photometric steps, applied to 8-bit images in this order after the crop and flip.
PHOTOMETRIC: dict[str, Callable[[], v2.Transform]] = {
    "color_jitter": lambda: v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05),
    "autocontrast": lambda: v2.RandomAutocontrast(p=0.5),
    "equalize": lambda: v2.RandomEqualize(p=0.5),
}


def train_transform(backbone: Backbone, size: int, augment: Sequence[str]) -> v2.Compose:
    """PIL image → normalised `size`×`size` tensor with the named random augmentations; without
    `random_resized_crop` the image is resized and centre-cropped as for evaluation."""
    steps: list[v2.Transform] = [v2.PILToTensor()]
    if "random_resized_crop" in augment:
        steps.append(v2.RandomResizedCrop(size, antialias=True))
    else:
        steps += [v2.Resize(round(size / CROP_RATIO), antialias=True), v2.CenterCrop(size)]
    if "hflip" in augment:
        steps.append(v2.RandomHorizontalFlip())
    steps += [make() for name, make in PHOTOMETRIC.items() if name in augment]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(backbone.mean, backbone.std)]
    return v2.Compose(steps)
