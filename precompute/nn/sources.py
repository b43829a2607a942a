"""Where an embedding network comes from: the protocol, and the pretrained backbone's source
(a fine-tuned checkpoint's source is `finetuned.FinetunedSource`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from precompute.config import ModelConfig
from precompute.nn.backbones import Backbone, load_backbone
from precompute.store import PENULTIMATE, PRETRAINED, SpaceKey, model_name


class ModelSource(Protocol):
    """Where the embedding network comes from: a pretrained backbone or a fine-tuned checkpoint."""

    key: str  # the model part of every SpaceKey it produces, e.g. "resnet50/pretrained"

    def recipe(self) -> dict[str, Any]:
        """What identifies the network's weights (goes into every artifact's recipe)."""
        ...

    def load(self) -> Backbone:
        """Build the network."""
        ...


@dataclass
class PretrainedSource:
    """The configured backbone with its pretrained weights."""

    config: ModelConfig

    @property
    def key(self) -> str:
        return model_name(self.config.backbone, PRETRAINED)

    def recipe(self) -> dict[str, Any]:
        return {"model": asdict(self.config)}

    def load(self) -> Backbone:
        return load_backbone(self.config)


def pretrained_space(config: ModelConfig, layer: str = PENULTIMATE) -> SpaceKey:
    """A layer's space of the configured backbone's pretrained weights."""
    return SpaceKey(PretrainedSource(config).key, layer)
