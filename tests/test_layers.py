"""Which layers are embedded: `stages` found in real backbones, every layer ordered by depth."""

from __future__ import annotations

import pytest
import torchvision

from precompute.config import ModelConfig
from precompute.errors import BackboneError
from precompute.nn.backbones import load_backbone
from precompute.nn.layers import resolve_layers


@pytest.fixture(scope="module")
def lite0():
    return load_backbone(ModelConfig(backbone="efficientnet_lite0")).model


def test_stages_are_evenly_spaced_blocks_of_efficientnet_lite0(lite0):
    layers = resolve_layers(lite0, ["stages", "penultimate"], 3, 224)
    assert list(layers) == ["_blocks.3", "_blocks.7", "_blocks.11", "penultimate"]
    orders = [depth.order for depth in layers.values()]
    assert orders == sorted(orders)
    assert [depth.label for depth in layers.values()] == [
        "block 4 of 16", "block 8 of 16", "block 12 of 16", None
    ]


def test_stages_of_a_resnet_are_its_residual_stages():
    resnet = torchvision.models.get_model("resnet18", weights=None).eval()
    assert list(resolve_layers(resnet, ["stages", "penultimate"], 3, 64)) == [
        "layer1", "layer2", "layer3", "penultimate"
    ]
    assert list(resolve_layers(resnet, ["stages"], 1, 64)) == ["layer2"]
    inside = resolve_layers(resnet, ["layer3.1.conv1"], 3, 64)["layer3.1.conv1"]
    assert inside.label == "in block 3 of 4"


def test_layers_are_ordered_from_shallow_to_deep_whatever_the_config_order(lite0):
    layers = resolve_layers(lite0, ["penultimate", "_blocks.12", "_blocks.2", "_blocks.2"], 3, 224)
    assert list(layers) == ["_blocks.2", "_blocks.12", "penultimate"]


def test_an_unknown_layer_name_is_refused_with_the_names_that_exist(lite0):
    with pytest.raises(BackboneError, match=r"layer\(s\) layer9 not in .*_blocks"):
        resolve_layers(lite0, ["stages", "layer9"], 3, 224)
