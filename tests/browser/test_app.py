"""The first app in a real browser: a non-blank map, colour-by switching, the missing-store page."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.data import load_explorer_data
from explorer.page import default_space, method_label
from tests.browser.explorer_page import map_pixels
from tests.browser.server import ARTIFACTS, panel_server

pytestmark = pytest.mark.browser


def coloured_pixels(pixels: np.ndarray) -> int:
    """Pixels that are neither white background nor grey: painted points."""
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    return int((spread > 40).sum())


def changed_pixels(before: np.ndarray, after: np.ndarray) -> int:
    return int(np.abs(after - before).sum(axis=2).astype(bool).sum())


def map_after_change(page, before: np.ndarray, seconds: float = 20) -> np.ndarray:
    """Poll the map until it differs from `before` (the server re-renders asynchronously)."""
    after = before
    for _ in range(int(seconds * 4)):
        page.wait_for_timeout(250)
        after = map_pixels(page)
        if changed_pixels(before, after) > 200:
            break
    return after


def open_explorer(page, url: str) -> np.ndarray:
    """Load the app, wait for the legend and the first rendered map; return the map."""
    page.goto(url, wait_until="networkidle")
    page.locator(".fse-legend").get_by_text("Baroque").wait_for()
    page.locator(".fse-map canvas").first.wait_for(state="visible")
    blank = map_pixels(page)
    return blank if coloured_pixels(blank) > 500 else map_after_change(page, blank)


def test_map_shows_points_and_colour_by_artist_changes_the_legend(served_store, page):
    by_style = open_explorer(page, served_store)
    legend = page.locator(".fse-legend")
    assert len(legend.locator(".fse-legend-value").all_inner_texts()) == 11
    page.screenshot(path=ARTIFACTS / "app-colour-by-style.png")
    assert coloured_pixels(by_style) > 500, "the map should show coloured points"

    page.locator(".fse-color-by select").select_option("artist")
    legend.locator(".fse-legend-title").get_by_text("artist", exact=True).wait_for()
    by_artist = map_after_change(page, by_style)
    page.screenshot(path=ARTIFACTS / "app-colour-by-artist.png")
    values = legend.locator(".fse-legend-value").all_inner_texts()
    assert "Baroque" not in values
    assert "rembrandt" in values and "claude-monet" in values
    assert coloured_pixels(by_artist) > 500
    assert changed_pixels(by_style, by_artist) > 200, "recolouring should change the map"


def test_the_page_opens_on_the_map_that_keeps_the_most_neighbours(built_store, served_store,
                                                                    page):
    data = load_explorer_data(str(built_store))
    space = default_space(data.spaces)
    kept = {m: data.trust[space, m]["neighbour_preservation"] for m in data.methods[space]}
    best = max(kept, key=kept.get)
    assert not space.pretrained and space.layer == "penultimate"
    assert best != "pca", "t-SNE and UMAP keep more neighbours than a linear map"
    open_explorer(page, served_store)
    shown = page.locator(".fse-method select")
    assert shown.input_value() == method_label(best, data.trust[space, best])
    assert f"keeps {kept[best]:.0%} of neighbours" in shown.input_value()
    options = shown.locator("option").all_inner_texts()
    assert sorted(options) == sorted(method_label(m, data.trust[space, m]) for m in kept)


def test_switching_the_projection_redraws_the_map(built_store, served_store, page):
    data = load_explorer_data(str(built_store))
    space = default_space(data.spaces)
    first = open_explorer(page, served_store)
    page.locator(".fse-method select").select_option(
        label=method_label("pca", data.trust[space, "pca"]))
    pca = map_after_change(page, first)
    assert changed_pixels(first, pca) > 200
    assert coloured_pixels(pca) > 500


def test_without_a_built_store_the_page_says_how_to_build_it(tmp_path, page):
    missing = tmp_path / "not-built"
    with panel_server(missing) as url:
        page.goto(url, wait_until="networkidle")
        page.get_by_text("No store to explore yet").wait_for()
        assert f"precompute all --config YOUR_CONFIG.toml --store {missing}" in (
            page.locator("pre").inner_text()
        )
