"""Where an embedding network comes from: the protocol, and the pretrained backbone's source
(a fine-tuned checkpoint's source is `finetuned.FinetunedSource`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from precompute.config import ModelConfig
from precompute.nn.backbones import Backbone, load_backbone


class ModelSource(Protocol):
    """Where the embedding network comes from: a pretrained backbone or a fine-tuned checkpoint."""

    key: str  # the model part of every SpaceKey it produces, e.g. "pretrained"

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
    key: str = "pretrained"

    def recipe(self) -> dict[str, Any]:
        return {"model": asdict(self.config)}

    def load(self) -> Backbone:
        return load_backbone(self.config)
