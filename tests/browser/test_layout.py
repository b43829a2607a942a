"""The page at the window sizes people use: the map keeps at least half the width, every
selection tool in view, and the tabs (and, when the side panel moves under the map, the hover
card, whole) on screen without scrolling; a click's neighbours come into view, and so does a
tab's content when the tab is opened."""

from __future__ import annotations

import pytest

from explorer.cards import CARD_CSS, image_card
from explorer.data import load_explorer_data
from tests.browser.explorer_page import ExplorerPage
from tests.browser.server import ARTIFACTS

pytestmark = pytest.mark.browser

TOOLS = ("Pan", "Lasso Select", "Box Select", "Wheel Zoom", "Reset")


@pytest.mark.parametrize("width, height", [(1500, 950), (1280, 720), (900, 900)])
def test_the_map_stays_usable_and_in_view_at_common_window_sizes(browser, served_store,
                                                                 built_store, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        explorer = ExplorerPage(page, served_store, built_store).open()
        page.screenshot(path=ARTIFACTS / f"layout-{width}x{height}.png")
        plot = page.locator(".fse-map").bounding_box()
        assert plot["width"] >= width / 2, f"the map is {plot['width']:.0f} px wide"
        assert plot["height"] >= 0.6 * plot["width"], "the map should be about square"
        for title in TOOLS:
            tool = page.locator(f".fse-map [title='{title}']").first
            assert tool.is_visible(), f"{title} is hidden at {width} px"
            box = tool.bounding_box()
            assert box["x"] + box["width"] <= width and box["y"] >= 0
        tabs = page.locator(".fse-tabs").bounding_box()
        assert tabs["y"] + 30 <= height, "the tab bar should be on screen"
        hover = page.get_by_text("Under the cursor", exact=True).bounding_box()
        assert hover["y"] + 60 <= height, "the hover card should be on screen"
        side = page.locator(".fse-side").evaluate("el => [el.scrollHeight, el.clientHeight]")
        assert side[0] <= side[1], f"before a click the side panel is cut: {side[0]} > {side[1]} px"

        explorer.click(30)  # its neighbours come into view, beside the map or below it
        first = page.locator(".fse-neighbour").first
        first.wait_for()
        page.wait_for_timeout(1_500)  # the scroll is smooth
        page.screenshot(path=ARTIFACTS / f"layout-clicked-{width}x{height}.png")
        box = first.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, (
            f"the first neighbour is at y = {box['y']:.0f} in a {height}-px window")

        tabs = page.locator(".fse-tabs")
        shortest = tabs.bounding_box()["height"]  # the Selection tab, before any other opens
        for name in ("Layers", "Metrics", "Quality", "Selection"):
            tabs.locator(".bk-tab", has_text=name).first.click()
            page.wait_for_timeout(2_500)  # built, then a smooth scroll
            page.screenshot(path=ARTIFACTS / f"layout-{name.lower()}-{width}x{height}.png")
            box = tabs.bounding_box()
            shown = min(box["y"] + box["height"], height) - max(box["y"], 0)
            assert box["y"] >= 0 and shown >= min(300, box["height"]), (
                f"{name}: {shown:.0f} px of the tab shown, its bar at y = {box['y']:.0f}")
        assert tabs.bounding_box()["height"] <= shortest + 5, (
            "the Selection tab stays as tall as the tallest tab opened before it")
    finally:
        context.close()


def test_a_card_in_a_narrow_side_panel_wraps_its_names_and_keeps_each_value_whole(page,
                                                                                  built_store):
    """The side panel beside the map is about 270 px wide at 1280 px: a long value without
    spaces stays on one line, and the long attribute names beside it wrap instead (the card
    once broke "Naive_Art_Primitivism" after "Naive_Art_Pri"), while a value with nowhere to
    break still wraps within the card."""
    data = load_explorer_data(str(built_store))
    token = "https://example.org/an_identifier_" + "x" * 60  # no place to break it
    card = image_card(data, 0, data.spaces[0], extra={
        "predicted style · efficientnet_lite0 head": "Naive_Art_Primitivism", "link": token})
    page.set_content(f"<style>{CARD_CSS}</style><div style='width: 270px'>{card}</div>")
    lines = page.evaluate("""() => {
        const cell = [...document.querySelectorAll('.fse-card td')]
            .find(td => td.textContent === 'Naive_Art_Primitivism');
        const range = document.createRange();
        range.selectNodeContents(cell);
        return range.getClientRects().length; }""")
    assert lines == 1, f"the value is broken over {lines} lines"
    wide = page.locator(".fse-card table").evaluate("table => table.getBoundingClientRect().width")
    assert wide <= 270, f"a value with nowhere to break widens the card to {wide:.0f} px"
