"""Fixes from a new user's walkthrough: search as you type, the wheel scrolling the page over
plots, confidences as percentages, and the sidebar in step with a heatmap click."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.filters import search_placeholder
from explorer.page import default_space
from precompute.store import SpaceKey
from tests.browser.explorer_page import ExplorerPage

pytestmark = pytest.mark.browser


@pytest.fixture
def explorer(served_store, built_store, page) -> ExplorerPage:
    return ExplorerPage(page, served_store, built_store).open()


def test_search_filters_as_the_user_types_and_names_the_stores_columns(explorer):
    box = explorer.page.locator(".fse-search input")
    placeholder = box.get_attribute("placeholder")
    assert placeholder == search_placeholder(explorer.data) and "title" in placeholder
    table = explorer.data.table
    artist = str(table["artist"].iloc[0])
    box.press_sequentially(artist, delay=40)  # no Enter
    found = np.zeros(len(table), dtype=bool)
    for column in ("title", "artist", "style", "predicted style", "style correct",
                   "style split", "quality"):
        if column in table:
            found |= table[column].astype(str).str.contains(artist, case=False,
                                                            regex=False).to_numpy()
    expected = int(found.sum())
    assert 0 < expected < len(table)
    explorer.page.locator(".fse-match b").get_by_text(str(expected), exact=True).wait_for()
    assert explorer.match_count() == expected


def test_the_wheel_scrolls_the_page_over_the_map_and_the_heatmap(explorer):
    explorer.page.set_viewport_size({"width": 1280, "height": 720})
    explorer.page.wait_for_timeout(1_000)
    view = explorer.page.url
    before = explorer.page.locator(".fse-map").bounding_box()
    explorer.page.mouse.move(before["x"] + before["width"] / 2, before["y"] + 200)
    explorer.page.mouse.wheel(0, 300)
    explorer.page.wait_for_timeout(1_000)
    after = explorer.page.locator(".fse-map").bounding_box()
    assert after["y"] < before["y"] - 100, "the page should scroll, not the map zoom"
    assert explorer.page.url == view, "the map's viewport should not change"

    explorer.page.get_by_text("Layers", exact=True).click()
    heatmap = explorer.page.locator(".fse-separability canvas").first
    heatmap.wait_for(state="visible")
    heatmap.scroll_into_view_if_needed()
    top = heatmap.bounding_box()
    explorer.page.mouse.move(top["x"] + top["width"] / 2, top["y"] + top["height"] / 2)
    explorer.page.mouse.wheel(0, -200)  # up: the tabs are at the foot of the page
    explorer.page.wait_for_timeout(1_000)
    assert heatmap.bounding_box()["y"] > top["y"] + 50


def test_a_models_confidence_shows_as_a_percentage(explorer):
    row = int(np.argmax(explorer.data.table["style confidence"].to_numpy()))
    explorer.hover(row)
    card = explorer.page.locator(f".fse-hover .fse-card[data-row='{row}']")
    card.wait_for()
    shown = card.locator("tr", has_text="style confidence").locator("td").inner_text()
    value = explorer.data.table["style confidence"].iloc[row]
    assert shown == f"{value:.0%}"


def test_switching_method_shows_the_whole_map_when_the_zoomed_view_would_be_empty(
        served_store, built_store, page):
    explorer = ExplorerPage(page, served_store, built_store)
    shown = SpaceKey.parse(explorer.space)
    assert shown == default_space(explorer.data.spaces)
    here = explorer.data.coords(shown, explorer.method)
    other = next(m for m in explorer.data.methods[shown] if m != explorer.method)
    there = explorer.data.coords(shown, other)
    half = 0.06
    for x, y in here:  # a small box around a point of this map, empty on the other map
        inside = ((np.abs(there[:, 0] - x) <= half) & (np.abs(there[:, 1] - y) <= half))
        if not inside.any():
            break
    else:
        pytest.fail("no part of this map is empty on the other")
    view = [round(float(v), 4) for v in (x - half, x + half, y - half, y + half)]
    explorer.open(f"?view={view}".replace(" ", ""))
    explorer.choose_method(other)
    explorer.page.wait_for_function(
        "() => decodeURIComponent(window.location.search).includes('view=[-1.05,1.05,-1.05,1.05]')"
        " || decodeURIComponent(window.location.search.replaceAll('+', ' '))"
        ".includes('view=[-1.05, 1.05, -1.05, 1.05]')")


def test_every_score_in_the_layers_tab_is_defined(explorer):
    explorer.page.get_by_text("Layers", exact=True).click()
    help_box = explorer.page.locator(".fse-score-help")
    help_box.locator("summary").click()
    terms = help_box.locator("dt").all_inner_texts()
    assert {"kNN accuracy", "linear probe accuracy", "silhouette",
            "baseline (in brackets)"} <= set(terms)
    meta = explorer.data.store.meta(explorer.data.store.separability_path())
    k = next(iter(meta["recipe"].values()))["analysis"]["knn"]
    assert f"{k} nearest neighbours" in help_box.locator("dd").first.inner_text()
    assert help_box.locator("dd").first.is_visible()
