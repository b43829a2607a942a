"""The compare view: two maps side by side, each with its own space and projection, one
selection and one hovered image between them, and a click's neighbours in both spaces."""

from __future__ import annotations

import json
import urllib.parse

import numpy as np
import pytest
from playwright.sync_api import expect

from explorer.compare_view import contrast_space
from explorer.neighbours import SHARED_K, shared_count
from precompute.store import SpaceKey
from tests.browser.explorer_page import FRAME_JS, RING_JS, ExplorerPage

pytestmark = pytest.mark.browser


def open_compare(page, served_store, built_store) -> tuple[ExplorerPage, ExplorerPage]:
    """The page with the compare view turned on: its first map and its second."""
    first = ExplorerPage(page, served_store, built_store).open()
    page.locator(".fse-compare input").check()
    page.locator(".fse-map-b canvas").first.wait_for(state="visible", timeout=60_000)
    space_b = contrast_space(first.data.spaces, SpaceKey.parse(first.space))
    second = first.second_map(str(space_b), first.data.best_method(space_b))
    page.wait_for_function(f"() => ({FRAME_JS})('fse-map-b') !== null")
    page.wait_for_timeout(1_000)
    return first, second


def lone_row(explorer: ExplorerPage) -> int:
    """A row with no other point within a tenth of the map of it, so hovering finds it."""
    coords = explorer.coords()
    gaps = np.linalg.norm(coords[:, None] - coords[None], axis=2)
    np.fill_diagonal(gaps, np.inf)
    return int(np.argmax(gaps.min(axis=1)))


def test_the_two_maps_share_hover_and_selection(served_store, built_store, page):
    first, second = open_compare(page, served_store, built_store)
    assert second.space != first.space
    expect(page.locator(".fse-compare-b-space select")).to_have_value(
        first.data.space_label(SpaceKey.parse(second.space)))
    assert second.frame()["left"] > first.frame()["left"] + 200  # side by side

    # hovering an image in either map rings it in both, each at its place in its own map
    for here, there in ((first, second), (second, first)):
        row = lone_row(here)
        here.hover(row)
        expected = tuple(float(v) for v in there.coords()[row])
        page.wait_for_function(
            f"() => {{ const r = ({RING_JS})({json.dumps(there.map_class)});"
            f" return r && Math.abs(r[0] - {expected[0]}) < 1e-4"
            f" && Math.abs(r[1] - {expected[1]}) < 1e-4; }}", timeout=20_000)
        assert np.allclose(here.ring(), here.coords()[row], atol=1e-4)
        page.mouse.move(5, 5)

    # a box in the second map selects the same images in both
    before = first.map_pixels()
    frame = second.frame()
    corner = (frame["left"] + 2, frame["top"] + 2)
    opposite = (frame["left"] + frame["width"] / 2, frame["top"] + frame["height"] / 2)
    x0, y1 = second.to_data(*corner)
    x1, y0 = second.to_data(*opposite)
    coords = second.coords()
    inside = ((coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0)
              & (coords[:, 1] <= y1))
    assert 0 < inside.sum() < len(coords)
    second.drag_box(corner, opposite)
    assert first.selected_count() == int(inside.sum())
    page.wait_for_timeout(1_500)
    assert (np.abs(first.map_pixels() - before).sum(axis=2) > 0).sum() > 100  # shown in the first


def test_a_click_shows_neighbours_in_both_spaces_and_the_link_keeps_the_view(
        served_store, built_store, page):
    first, second = open_compare(page, served_store, built_store)
    row = lone_row(first)
    first.click(row)
    shared = page.locator(".fse-shared")
    shared.wait_for(timeout=30_000)
    data = first.data
    rows_a, _ = data.neighbours(SpaceKey.parse(first.space), row, 13)
    rows_b, _ = data.neighbours(SpaceKey.parse(second.space), row, 13)
    expected = shared_count(rows_a, rows_b)
    expect(shared).to_contain_text(f"{expected} of {SHARED_K}")
    grids = page.locator(".fse-neighbours")
    expect(grids).to_have_count(2)  # its neighbours in the first map's space, then the second's
    for grid, rows in zip(range(2), (rows_a, rows_b), strict=True):
        expect(grids.nth(grid).locator(".fse-tile")).to_have_count(len(rows) - 1)
        assert first.rows_of(f".fse-neighbours >> nth={grid} >> .fse-tile") == rows[1:].tolist()

    page.wait_for_function("() => location.search.includes('compare=')")
    query = urllib.parse.parse_qs(page.evaluate("() => location.search").lstrip("?"))
    assert query["compare"] == [second.space]
    assert query["compare_method"] == [second.method]
    again = ExplorerPage(page, served_store, built_store).open("?" + urllib.parse.urlencode(
        {"compare": second.space, "compare_method": second.method}))
    expect(page.locator(".fse-compare input")).to_be_checked()
    page.locator(".fse-map-b canvas").first.wait_for(state="visible", timeout=60_000)
    assert again.second_map(second.space, second.method).frame() is not None


TEXT_FITS_JS = """select => {
    const style = getComputedStyle(select);
    const context = document.createElement("canvas").getContext("2d");
    context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const room = select.clientWidth - parseFloat(style.paddingLeft)
        - parseFloat(style.paddingRight);
    return [select.options[select.selectedIndex].text,
            context.measureText(select.options[select.selectedIndex].text).width, room]; }"""


def test_each_maps_selectors_show_their_whole_choice_in_a_900_px_window(
        served_store, built_store, browser):
    """Four selectors in one row above the two maps cut "finetuned-style-head · penultimate"
    to "finetuned-style" at 900 px: each map's two selectors stand one above the other."""
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_compare(page, served_store, built_store)
        for name in ("a-space", "a-method", "b-space", "b-method"):
            text, width, room = page.locator(f".fse-compare-{name} select").evaluate(
                TEXT_FITS_JS)
            assert width <= room, f"{name}: {text!r} needs {width:.0f} px, has {room:.0f}"
    finally:
        context.close()
