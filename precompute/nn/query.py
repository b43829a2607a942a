"""Put a new image through a store's model: its embedding at one layer, the model's class
probabilities, and a Grad-CAM map of what drove the top class. Used by the explorer's
"query an image" and "why this label?" features, which import this module on first use only."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from precompute.config import ModelConfig
from precompute.errors import StoreError
from precompute.nn.backbones import Backbone
from precompute.nn.device import pick_device
from precompute.nn.features import LayerTap
from precompute.nn.finetuned import FinetunedSource
from precompute.nn.sources import ModelSource, PretrainedSource
from precompute.store import SpaceKey, Store


@dataclass
class QueryModel:
    """A store's network ready for single images."""

    backbone: Backbone
    tap: LayerTap
    classes: list[str] | None  # names of the outputs, when known
    device: torch.device

    def embed(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """The image's embedding at the tapped layer and the class probabilities."""
        batch = self.backbone.eval_transform()(image).unsqueeze(0).to(self.device)
        with torch.inference_mode():
            vector = next(iter(self.tap(batch).values()))[0]
            probabilities = torch.softmax(self.backbone.model(batch)[0].float(), dim=0)
        return vector.float().cpu().numpy(), probabilities.cpu().numpy()

    def grad_cam(self, image: Image.Image) -> tuple[np.ndarray, int]:
        """Grad-CAM of the top class on the last convolutional feature map: a map in [0, 1]
        at the map's resolution, and the class index it explains."""
        model = self.backbone.model
        batch = self.backbone.eval_transform()(image).unsqueeze(0).to(self.device)
        feature_maps: list[torch.Tensor] = []
        with _last_feature_map(model, feature_maps):
            logits = model(batch)[0]
        target = int(logits.argmax())
        activation = feature_maps[-1]
        (gradient,) = torch.autograd.grad(logits[target], activation)
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * activation).sum(dim=1))[0].detach().float().cpu().numpy()
        return cam / cam.max() if cam.max() > 0 else cam, target


@contextlib.contextmanager
def _last_feature_map(model: nn.Module, kept: list[torch.Tensor]):
    """Keep every spatial (4-D, wider than 1×1) module output of one forward pass; the last is
    the final feature map, just before global pooling."""

    def keep(_module, _inputs, output) -> None:
        if (isinstance(output, torch.Tensor) and output.ndim == 4 and output.requires_grad
                and output.shape[-1] > 1 and output.shape[-2] > 1):
            kept.append(output)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(keep) for m in leaves]
    try:
        with torch.enable_grad():
            yield
    finally:
        for handle in handles:
            handle.remove()


def model_source(store: Store, space: SpaceKey) -> ModelSource:
    """The network that made `space`, from the recipe in its own sidecar (whichever config
    ran last): the backbone and weights, or the training run's checkpoint."""
    meta = store.meta(store.embeddings_path(space))
    if meta is None:
        raise StoreError(f"{store.root} has no complete embeddings for {space}")
    recipe = meta["recipe"]
    if "checkpoint" in recipe:
        return FinetunedSource(store, space.model, tuple(recipe["folds"]))
    return PretrainedSource(ModelConfig(**recipe["model"]))


def load_query_model(store: Store, space: SpaceKey) -> QueryModel:
    """The network of `space`, tapped at its layer, on the best device available."""
    source = model_source(store, space)
    backbone = source.load()
    device = pick_device("auto")
    backbone.model.to(device).eval()
    tap = LayerTap(backbone.model, [space.layer]).to(device).eval()
    return QueryModel(backbone, tap, _class_names(source, backbone), device)


def _class_names(source: ModelSource, backbone: Backbone) -> list[str] | None:
    """What the network's outputs mean: the target's classes for a fine-tuned model, else
    ImageNet's class names when torchvision's weights carry them."""
    if isinstance(source, FinetunedSource):
        return [str(c) for c in source.checkpoint_meta()["classes"]]
    return _torchvision_categories(backbone)


def _torchvision_categories(backbone: Backbone) -> list[str] | None:
    """ImageNet class names when the weights come from torchvision (they carry them)."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(backbone.name)
    except (ValueError, KeyError):
        return None
    for weights in enum:
        if str(weights) == backbone.weights_id:
            return list(weights.meta.get("categories") or []) or None
    return None
