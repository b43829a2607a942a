"""The fine-tuned network: a pretrained backbone with a new head for a target's classes, which of
its parts train, and the embedding source that rebuilds it from its best checkpoint.

Checkpoints hold only the state of the modules that train (the head alone in mode "head"); the
frozen rest is the configured pretrained weights, named in the checkpoint's recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from precompute.config import ModelConfig, TrainConfig
from precompute.errors import StoreError
from precompute.nn.backbones import Backbone, load_backbone, replace_classifier
from precompute.store import Store, model_name

# A normalisation layer right after a convolution belongs to that convolution's stage.
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


def run_model(model: ModelConfig, train: TrainConfig) -> str:
    """The store's name of one training run: `<backbone>/<run>`, e.g.
    `efficientnet_lite0/finetuned-style-head`."""
    return model_name(model.backbone, train.run)


@dataclass
class FinetunedNetwork:
    """A backbone with a new head; `trainable` names the modules that learn ("" = all)."""

    backbone: Backbone
    head: str  # module name of the new head
    trainable: list[str]

    @property
    def model(self) -> nn.Module:
        return self.backbone.model

    def train_mode(self) -> None:
        """Training mode for the modules that learn; frozen ones stay in evaluation mode, so
        their batch-norm statistics and dropout stay as pretrained."""
        self.model.eval()
        for name in self.trainable:
            self.model.get_submodule(name).train()

    def trained_state(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers of the modules that learn: what a checkpoint keeps."""
        state = self.model.state_dict()
        if "" in self.trainable:
            return state
        prefixes = tuple(f"{name}." for name in self.trainable)
        return {key: value for key, value in state.items() if key.startswith(prefixes)}


def build_network(model: ModelConfig, num_classes: int, train: TrainConfig) -> FinetunedNetwork:
    """The pretrained backbone with a new head; only the modules `train.mode` names learn."""
    backbone = load_backbone(model)
    head = replace_classifier(backbone, num_classes, train.hidden, train.dropout)
    trainable = trainable_modules(backbone.model, head, train.mode, train.last_stages)
    backbone.model.requires_grad_(False)
    for name in trainable:
        backbone.model.get_submodule(name).requires_grad_(True)
    return FinetunedNetwork(backbone, head, trainable)


def trainable_modules(model: nn.Module, head: str, mode: str, last_stages: int) -> list[str]:
    """Module names that learn: the head ("head"), the last stages and the head ("last"), or
    the whole network ("full", written "")."""
    if mode == "full":
        return [""]
    if mode == "head":
        return [head]
    stages = backbone_stages(model, head)
    return [name for stage in stages[-last_stages:] for name in stage] + [head]


def backbone_stages(model: nn.Module, head: str) -> list[list[str]]:
    """The backbone's blocks in forward order, as module names, for "train the last N stages".

    From the root, descend while only one child holds parameters (torchvision's `features`);
    the children there are the stages, a ModuleList counting as its items (EfficientNet-Lite's
    `_blocks`), and a normalisation layer joins the stage before it (ResNet's `conv1` + `bn1`).
    Layers that share a container with the head (VGG's fully connected layers) are the last
    stage. ResNet: conv1+bn1, layer1 … layer4; EfficientNet: features.0 … features.8.
    """
    own = [name for name, _ in model.named_parameters() if not name.startswith(f"{head}.")]

    def holds_parameters(module_name: str) -> bool:
        return any(name.startswith(f"{module_name}.") for name in own)

    prefix, units, tail = "", [], []
    while True:
        units, around_head = [], []
        for child, module in model.get_submodule(prefix).named_children():
            name = f"{prefix}.{child}" if prefix else child
            if not holds_parameters(name):
                continue
            if head.startswith(f"{name}."):
                around_head.append(name)
            elif isinstance(module, nn.ModuleList):
                units += [f"{name}.{i}" for i in range(len(module))
                          if holds_parameters(f"{name}.{i}")]
            else:
                units.append(name)
        tail = around_head + tail
        if len(units) != 1:
            break
        prefix = units[0]
    stages: list[list[str]] = []
    for name in units or [prefix]:
        if stages and isinstance(model.get_submodule(name), NORM_LAYERS):
            stages[-1].append(name)
        else:
            stages.append([name])
    return stages + [[name] for name in tail]


def load_trained_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a checkpoint's trained modules into a freshly built network."""
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise StoreError(
            f"checkpoint {source} does not fit the configured network (unexpected "
            f"{', '.join(result.unexpected_keys[:5])}); run `precompute train --force`"
        )


@dataclass
class FinetunedSource:
    """The embedding source of a training run (`key` = `<backbone>/<run>`): its best
    checkpoint in the store, rebuilt from the recipe saved beside it. A run with k folds has
    one checkpoint per fold (`folds` 1 … k); `load` builds the first."""

    store: Store
    key: str
    folds: tuple[int, ...] = (0,)  # 0: the run's one model

    def checkpoint_meta(self, fold: int | None = None) -> dict[str, Any]:
        """The sidecar of a finished training (its recipe, classes and checkpoint id)."""
        fold = self.folds[0] if fold is None else fold
        meta = self.store.meta(self.store.checkpoint_path(self.key, "best", fold))
        if meta is None:
            raise StoreError(
                f"{self.store.root} has no finished training run {self.key!r}"
                + (f" (fold {fold})" if fold else "") + "; run `precompute train`"
            )
        return meta

    def recipe(self) -> dict[str, Any]:
        metas = [self.checkpoint_meta(fold) for fold in self.folds]
        return {"checkpoint": [meta["checkpoint"] for meta in metas], "folds": list(self.folds),
                "train": metas[0]["recipe"]}

    def load(self) -> Backbone:
        meta = self.checkpoint_meta()
        recipe = meta["recipe"]
        backbone = load_backbone(ModelConfig(**recipe["model"]))
        replace_classifier(
            backbone, len(meta["classes"]), recipe["train"]["hidden"], recipe["train"]["dropout"]
        )
        path = self.store.checkpoint_path(self.key, "best", self.folds[0])
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        load_trained_state(backbone.model, checkpoint["model"], str(path))
        backbone.weights_id = (
            f"{backbone.weights_id}, fine-tuned on {recipe['train']['target']} "
            f"({recipe['train']['mode']}): {meta['checkpoint']}"
        )
        backbone.model.eval()
        return backbone
