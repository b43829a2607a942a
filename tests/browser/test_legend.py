"""The legend answers "where is this value?": click to isolate, shift-click to add, the
isolation in the URL, and a search box on long legends."""

from __future__ import annotations

import json
import urllib.parse

import numpy as np
import pytest

from explorer.legend import SEARCHABLE
from tests.browser.explorer_page import ExplorerPage

pytestmark = pytest.mark.browser
TOOLBAR_PX = 45  # the top of the map's pane that its toolbar takes


@pytest.fixture
def explorer(served_store, built_store, page) -> ExplorerPage:
    return ExplorerPage(page, served_store, built_store).open()


def saturated(pixels: np.ndarray) -> int:
    """Pixels of a strong colour: points drawn in their colour, not dimmed, grey or white."""
    return int(((pixels.max(axis=2) - pixels.min(axis=2)) > 80).sum())


def points_in_colour(explorer: ExplorerPage) -> int:
    """Strongly coloured pixels of the map below its toolbar (whose logo is coloured)."""
    return saturated(explorer.map_pixels()[TOOLBAR_PX:])


def isolated_in_url(explorer: ExplorerPage) -> list[str]:
    query = urllib.parse.parse_qs(urllib.parse.urlparse(explorer.page.url).query)
    return (json.loads(query["isolate"][0]) or []) if "isolate" in query else []


def legend_row(explorer: ExplorerPage, value: str):
    return explorer.page.locator(".fse-legend-row").filter(has_text=value).first


def wait_for_isolated(explorer: ExplorerPage, values: list[str]) -> None:
    marked = explorer.page.locator(".fse-legend-row.fse-isolated .fse-legend-value")
    for _ in range(80):
        if sorted(marked.all_inner_texts()) == sorted(values) and sorted(
                isolated_in_url(explorer)) == sorted(values):
            return
        explorer.page.wait_for_timeout(250)
    assert sorted(marked.all_inner_texts()) == sorted(values)
    assert sorted(isolated_in_url(explorer)) == sorted(values)


def test_clicking_a_legend_value_isolates_it_and_the_link_keeps_it(explorer, browser):
    styles = explorer.page.locator(".fse-legend-value").all_inner_texts()
    first, second = styles[0], styles[1]
    before = explorer.map_pixels()
    legend_row(explorer, first).click()
    wait_for_isolated(explorer, [first])
    explorer.page.wait_for_timeout(1_500)
    alone = explorer.map_pixels()
    assert 0 < saturated(alone) < saturated(before) / 3, "the other styles should be dimmed"
    assert explorer.page.locator(".fse-legend-row.fse-dimmed").count() == len(styles) - 1

    legend_row(explorer, second).click(modifiers=["Shift"])
    wait_for_isolated(explorer, [first, second])
    explorer.page.wait_for_timeout(1_500)
    assert saturated(explorer.map_pixels()) > saturated(alone)

    shared = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        again = ExplorerPage(shared, explorer.url, explorer.data.store.root)
        again.open("?" + urllib.parse.urlparse(explorer.page.url).query)
        wait_for_isolated(again, [first, second])
    finally:
        shared.close()

    legend_row(explorer, second).click(modifiers=["Control"])  # removes it
    wait_for_isolated(explorer, [first])
    legend_row(explorer, first).click()  # the only one isolated: all shown again
    wait_for_isolated(explorer, [])
    explorer.page.wait_for_timeout(1_500)
    assert explorer.page.locator(".fse-legend-row.fse-dimmed").count() == 0
    assert saturated(explorer.map_pixels()) == pytest.approx(saturated(before), rel=0.1)


def test_changing_the_colour_clears_the_isolation(explorer):
    first = explorer.page.locator(".fse-legend-value").first.inner_text()
    legend_row(explorer, first).click()
    wait_for_isolated(explorer, [first])
    explorer.choose("fse-color-by", "artist")
    explorer.page.locator(".fse-legend-title").get_by_text("artist", exact=True).wait_for()
    wait_for_isolated(explorer, [])


def test_a_long_legend_can_be_searched(explorer):
    search = explorer.page.locator(".fse-legend-search")
    assert not search.is_visible(), "11 styles need no search box"
    artists = explorer.data.table["artist"].astype(str).unique()
    assert len(artists) > SEARCHABLE
    explorer.choose("fse-color-by", "artist")
    explorer.page.locator(".fse-legend-title").get_by_text("artist", exact=True).wait_for()
    search.wait_for(state="visible")
    wanted = sorted(artists)[0][:5]
    search.press_sequentially(wanted)
    rows = explorer.page.locator(".fse-legend-row")
    explorer.page.wait_for_timeout(300)
    shown = [row.inner_text().split("\n")[0] for row in rows.all() if row.is_visible()]
    assert shown and all(wanted.lower() in value.lower() for value in shown)
    assert len(shown) < rows.count()
    explorer.choose("fse-color-by", "style")  # a short legend: no box, and every value shown
    explorer.page.locator(".fse-legend-title").get_by_text("style", exact=True).wait_for()
    explorer.page.wait_for_timeout(300)
    assert not search.is_visible()
    assert all(row.is_visible() for row in rows.all()) and rows.count() == 11


def test_isolating_a_value_outside_the_selection_says_why_every_point_is_grey(explorer):
    """The map shows the selected images among the isolated values; with none, every point is
    grey, and the note under the legend says so, with the counts."""
    styles = explorer.page.locator(".fse-legend-value").all_inner_texts()
    first, second = styles[0], styles[1]
    explorer.page.locator(".fse-select-attribute select").select_option("style")
    explorer.page.locator(".fse-select-value select").select_option(second)
    explorer.page.locator(".fse-select-go button").click()
    selected = int((explorer.data.table["style"].astype(str) == second).sum())
    assert explorer.selected_count() == selected
    note = explorer.page.locator(".fse-isolation-note")
    assert note.count() == 0, "no note before a value is isolated"
    explorer.page.wait_for_timeout(1_500)
    coloured = points_in_colour(explorer)  # the selection
    assert coloured > 0

    legend_row(explorer, first).click()
    wait_for_isolated(explorer, [first])
    note.get_by_text(f"None of the {selected:,} selected images is {first}").wait_for()
    explorer.page.wait_for_timeout(1_500)
    assert points_in_colour(explorer) == 0, "every point should be grey"

    legend_row(explorer, second).click(modifiers=["Shift"])
    wait_for_isolated(explorer, [first, second])
    note.get_by_text(f"{selected:,} of the {selected:,} selected images are {first} or "
                     f"{second}").wait_for()
    explorer.page.wait_for_timeout(1_500)
    assert points_in_colour(explorer) == pytest.approx(coloured, rel=0.1)
