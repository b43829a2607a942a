"""Decide which layers of a backbone are embedded: expand `stages`, order every layer by depth.

`stages` stands for a few evenly spaced blocks of the backbone's trunk. The trunk is found
generically: the module whose children are the blocks a forward pass runs in sequence (resnet
`layer1..4`, torchvision efficientnet `features.N`, efficientnet_lite0 `_blocks.N`, ViT
`encoder.layers.*`), chosen as the longest such run of blocks that together hold most of the
network's weights. The depth of a layer is its place in the order a real forward pass finishes
modules, so early layers sort before late ones whatever their names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from precompute.errors import BackboneError
from precompute.nn.backbones import classifier_name
from precompute.nn.features import check_layer_names
from precompute.store import PENULTIMATE

STAGES = "stages"
# A run of blocks is the trunk only if it holds this share of the weights outside the head;
# lower, and one long stage inside the trunk (e.g. regnet's block4) would win over the trunk.
TRUNK_SHARE = 0.8


@dataclass(frozen=True)
class LayerDepth:
    """Where a layer runs: its place in the order a forward pass finishes modules, and for a
    block of the trunk (or a module inside one) which block it is, e.g. "block 8 of 16"."""

    order: int
    label: str | None = None


def resolve_layers(
    model: nn.Module, requested: list[str], stages: int, input_size: int
) -> dict[str, LayerDepth]:
    """The layers to embed with their depth, shallowest first: `stages` becomes `stages` evenly
    spaced blocks, `penultimate` stays (deepest of all), module names are checked."""
    order = execution_order(model, input_size)
    names: list[str] = []
    for name in requested:
        names.extend(stage_blocks(model, stages, order) if name == STAGES else [name])
    names = list(dict.fromkeys(names))
    check_layer_names(model, names)
    depth_of = {name: depth for depth, name in enumerate(order)}
    head_depth = depth_of.get(classifier_name(model), len(order))
    depths = {}
    for name in names:
        if name == PENULTIMATE:
            depths[name] = head_depth  # the classifier's input: just before the head runs
        elif name in depth_of:
            depths[name] = depth_of[name]
        else:
            raise BackboneError(
                f"layer {name} of {type(model).__name__} does not run when the model embeds an "
                "image (e.g. an auxiliary head used only in training); choose another layer"
            )
    labels = block_labels(model, names, order)
    return {name: LayerDepth(depth, labels.get(name))
            for name, depth in sorted(depths.items(), key=lambda item: item[1])}


def block_labels(model: nn.Module, names: list[str], order: list[str]) -> dict[str, str]:
    """"block i of n" for each of `names` that is a block of the trunk, "in block i of n" for
    a module inside one; none for other layers, nor for a model whose trunk is not found."""
    try:
        blocks = trunk_blocks(model, order)
    except BackboneError:
        return {}
    labels = {}
    for name in names:
        for number, block in enumerate(blocks, start=1):
            if name == block or name.startswith(block + "."):
                inside = "" if name == block else "in "
                labels[name] = f"{inside}block {number} of {len(blocks)}"
    return labels


def execution_order(model: nn.Module, input_size: int) -> list[str]:
    """Names of the modules one forward pass runs, in the order they finish."""
    finished: list[str] = []
    handles = [
        module.register_forward_hook(lambda *_args, name=name: finished.append(name))
        for name, module in model.named_modules()
        if name
    ]
    device = next(model.parameters()).device
    training = model.training
    model.eval()  # the embedding pass runs in eval mode (and batch norm refuses one image)
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(finished))


def stage_blocks(model: nn.Module, count: int, order: list[str]) -> list[str]:
    """`count` evenly spaced blocks of the trunk, leaving out the last block, whose pooled output
    is (nearly) the penultimate embedding that is usually embedded as well."""
    if count < 1:
        raise BackboneError(f"embed.stages must be at least 1, not {count}")
    blocks = trunk_blocks(model, order)
    picks = [max(0, (i * len(blocks)) // (count + 1) - 1) for i in range(1, count + 1)]
    return [blocks[i] for i in dict.fromkeys(picks)]


def trunk_blocks(model: nn.Module, order: list[str]) -> list[str]:
    """Full names of the blocks the trunk runs in sequence (see the module docstring)."""
    ran = set(order)
    head = classifier_name(model)
    head_top = head.split(".")[0]
    body = sum(
        _weights(child) for name, child in model.named_children()
        if name in ran and name != head_top  # auxiliary heads that never run do not count
    )
    best: tuple[tuple[int, float], list[str]] | None = None
    for parent, module in model.named_modules():
        children = [
            (f"{parent}.{name}" if parent else name, child)
            for name, child in module.named_children()
        ]
        children = [
            (name, child) for name, child in children
            if name in ran and _weights(child) and not _holds(name, head)
        ]
        composite = [(name, child) for name, child in children if any(child.children())]
        # Blocks are composite modules when there are such; plain layers only otherwise (vgg).
        for blocks in (composite, children):
            share = sum(_weights(child) for _, child in blocks) / max(body, 1)
            if len(blocks) >= 2 and share >= TRUNK_SHARE:
                key = (len(blocks), share)
                if best is None or key > best[0]:
                    best = (key, [name for name, _ in blocks])
                break
    if best is None:
        raise BackboneError(
            f"cannot find the stages of {type(model).__name__}; list module names in "
            "[embed] layers instead of `stages`"
        )
    return sorted(best[1], key=order.index)


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _holds(name: str, head: str) -> bool:
    """Whether module `name` is the head or contains it."""
    return head == name or head.startswith(name + ".")
