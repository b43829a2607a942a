"""Read pooled activations of named layers out of a network in one forward pass.

`penultimate` names the input of the classifier (the usual embedding). Other names are module
names such as `layer3` or `_blocks.7`. torchvision's `create_feature_extractor` is used where the
model can be traced; forward hooks serve models that cannot. Activations are global-average
pooled to one vector per image (4D maps over space, token sequences over tokens).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from precompute.errors import BackboneError
from precompute.nn.backbones import classifier_name
from precompute.store import PENULTIMATE

log = logging.getLogger(__name__)



class LayerTap(nn.Module):
    """Callable `images → {layer: (batch, dim) tensor}` for the requested layers of `model`."""

    def __init__(self, model: nn.Module, layers: Sequence[str]):
        super().__init__()
        self.layers = list(dict.fromkeys(layers))
        self.model = model
        check_layer_names(model, self.layers)
        self.extractor = self._traced()
        self.mode = "fx" if self.extractor is not None else "hooks"
        self._captured: dict[str, torch.Tensor] = {}
        if self.extractor is None:
            self._install_hooks()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.extractor is not None:
            outputs = self.extractor(images)
        else:
            self._captured.clear()
            self.model(images)
            outputs = self._captured
        return {layer: pool(outputs[layer]) for layer in self.layers}

    # ------------------------------------------------------------------ set-up
    def _traced(self) -> nn.Module | None:
        """torchvision's feature extractor, or None when the model cannot be traced."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, eval_nodes = get_graph_node_names(self.model)
                head = classifier_name(self.model)
                heads = [i for i, node in enumerate(eval_nodes) if node == head]
                if not heads or heads[-1] == 0:
                    return None
                # In every torchvision head the node just before the classifier is its input.
                nodes = {
                    (eval_nodes[heads[-1] - 1] if layer == PENULTIMATE else layer): layer
                    for layer in self.layers
                }
                extractor = create_feature_extractor(self.model, return_nodes=nodes)
        except Exception as exc:  # tracing failures come in many types
            log.info("%s cannot be traced (%s); using forward hooks", type(self.model).__name__,
                     str(exc).splitlines()[0][:120])
            return None
        if PENULTIMATE in self.layers and not self._penultimate_fits(extractor):
            return None
        return extractor

    def _penultimate_fits(self, extractor: nn.Module) -> bool:
        """Check on one small input that the traced penultimate node has the classifier's width."""
        width = self.model.get_submodule(classifier_name(self.model)).in_features
        probe = torch.zeros(1, 3, 224, 224, device=next(self.model.parameters()).device)
        with torch.no_grad():
            out = extractor(probe)[PENULTIMATE]
        return out.ndim == 2 and out.shape[1] == width

    def _install_hooks(self) -> None:
        for layer in self.layers:
            if layer == PENULTIMATE:
                head = self.model.get_submodule(classifier_name(self.model))
                head.register_forward_pre_hook(self._keep_input(layer))
            else:
                self.model.get_submodule(layer).register_forward_hook(self._keep_output(layer))

    def _keep_input(self, layer: str):
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            self._captured[layer] = inputs[0]

        return hook

    def _keep_output(self, layer: str):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self._captured[layer] = output

        return hook


def check_layer_names(model: nn.Module, layers: Sequence[str]) -> None:
    """Raise a BackboneError naming the layers that are neither `penultimate` nor a module."""
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name != PENULTIMATE and name not in modules]
    if unknown:
        top = [name for name in modules if name and name.count(".") <= 1][:40]
        raise BackboneError(
            f"layer(s) {', '.join(unknown)} not in {type(model).__name__}; "
            f"use {PENULTIMATE}, stages or module names such as {', '.join(top)}"
        )


def pool(activation: torch.Tensor) -> torch.Tensor:
    """Global average pool to (batch, dim): over space for maps, over tokens for sequences."""
    if isinstance(activation, (tuple, list)):
        activation = activation[0]
    if activation.ndim == 4:
        return activation.mean(dim=(2, 3))
    if activation.ndim == 3:
        return activation.mean(dim=1)
    return activation.flatten(1)
