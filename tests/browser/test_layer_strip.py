"""The layer strip in the Layers tab: every layer of the shown backbone as a small painted map
with its kNN score for the colour-by attribute, and a click opens that layer in the main map."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from explorer.layer_strip import TILE_PX, strip_spaces
from precompute.store import SpaceKey
from tests.browser.explorer_page import ExplorerPage

pytestmark = pytest.mark.browser


def tile_pixels(tile) -> np.ndarray:
    """The RGB pixels of a tile's small map, from its data URI."""
    source = tile.locator("img").get_attribute("src")
    assert source.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_the_layer_strip_shows_every_layer_scored_and_opens_one_in_the_map(
        served_store, built_store, page):
    explorer = ExplorerPage(page, served_store, built_store).open()
    shown = SpaceKey.parse(explorer.space)
    layers = strip_spaces(explorer.data, shown)
    assert len(layers) >= 4 and layers[-1] == shown  # the pretrained layers, then the run's
    before = explorer.map_pixels()
    page.get_by_text("Layers", exact=True).click()
    tiles = page.locator(".fse-strip-tile")
    expect(tiles).to_have_count(len(layers), timeout=60_000)  # the tab builds on first open
    assert page.locator(".fse-strip-tile.fse-shown").get_attribute("value") == str(shown)

    table = explorer.data.store.read_separability()
    colour_by = page.locator(".fse-color-by select").input_value()
    for layer, tile in zip(layers, tiles.all(), strict=True):
        assert tile.get_attribute("value") == str(layer)
        if layer.pretrained and layer.layer != "penultimate":  # a block of the trunk
            assert re.fullmatch(rf"{re.escape(layer.layer)} · block \d+ of \d+",
                                tile.locator(".fse-strip-layer").inner_text())
        score = table[(table["space"] == str(layer)) & (table["attribute"] == colour_by)
                      & (table["metric"] == "knn") & (table["given"] == "")]["value"]
        assert tile.locator(".fse-strip-score").inner_text().startswith(
            f"kNN {score.iloc[0]:.2f} (chance")
        pixels = tile_pixels(tile)
        assert pixels.shape == (TILE_PX, TILE_PX, 3)
        assert ((pixels.max(axis=2) - pixels.min(axis=2)) > 40).sum() > 100  # painted
    # the layers are different maps of the same images
    assert np.abs(tile_pixels(tiles.first) - tile_pixels(tiles.last)).sum() > 0

    first = layers[0]
    tiles.first.evaluate("tile => tile.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    assert page.locator(".fse-map").bounding_box()["y"] < -200  # the map is scrolled away
    tiles.first.click()
    expect(page.locator(".fse-space select")).to_have_value(explorer.data.space_label(first))
    expect(page.locator(".fse-strip-tile.fse-shown")).to_have_attribute("value", str(first))
    page.wait_for_function(  # the link names the layer shown
        f"() => decodeURIComponent(location.search).includes({json.dumps(str(first))})")
    page.wait_for_timeout(1_500)
    top = page.locator(".fse-map").bounding_box()["y"]  # scrolled up to the map
    assert -20 <= top <= page.viewport_size["height"] / 2
    assert (np.abs(explorer.map_pixels() - before).sum(axis=2) > 0).sum() > 200
