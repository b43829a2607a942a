"""Every explorer interaction in a real browser, each asserting what a person would see."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect

from explorer.map_panel import ZOOM_SETTLE_MS
from explorer.separability_view import column_name
from precompute.store import ID_COLUMN, SpaceKey
from tests.browser.explorer_page import (
    MAP_PLOTS_JS,
    ExplorerPage,
    distance_to_edges,
    points_inside,
)
from tests.browser.server import ARTIFACTS

pytestmark = pytest.mark.browser


@pytest.fixture
def explorer(served_store, built_store, page) -> ExplorerPage:
    return ExplorerPage(page, served_store, built_store).open()


def a_clear_lasso(explorer: ExplorerPage) -> tuple[list[tuple[float, float]], np.ndarray]:
    """A lasso (screen vertices) around a dense part of the map whose outline passes no
    closer than 4 pixels to any point, and the rows inside it by the even-odd rule."""
    coords = explorer.coords()
    screen = np.array([explorer.to_screen(float(x), float(y)) for x, y in coords])
    # around the map's middle first, then around its points (the layout varies with the
    # versions of the reducers' libraries)
    centres = [np.median(screen, axis=0), *screen[np.random.default_rng(0).permutation(
        len(screen))[:40]]]
    angles = np.linspace(0, 2 * np.pi, 9)[:-1] + 0.2
    for centre in centres:
        for radius in range(70, 200, 7):
            vertices = centre + radius * np.column_stack([np.cos(angles), 0.8 * np.sin(angles)])
            inside = points_inside(vertices, screen)
            if 5 <= inside.sum() <= 40 and distance_to_edges(vertices, screen).min() > 4:
                return [tuple(v) for v in vertices], np.flatnonzero(inside)
    raise AssertionError("no clear lasso found on this map")


def test_hover_shows_the_thumbnail_and_attributes_of_the_point(explorer):
    row = 17
    before = explorer.map_pixels()  # (screenshots scroll: take it before measuring positions)
    explorer.hover(row)
    card = explorer.page.locator(f".fse-hover .fse-card[data-row='{row}']")
    card.wait_for()
    explorer.page.wait_for_timeout(300)
    darkened = (explorer.map_pixels().max(axis=2) < 60) & (before.max(axis=2) >= 60)
    ring_y, ring_x = np.nonzero(darkened)
    canvas = explorer.page.locator(".fse-map canvas").first.bounding_box()
    point_x, point_y = explorer.screen_of(row)
    assert len(ring_x) > 30, "a dark ring marks the point under the pointer"
    assert abs(ring_x.mean() - (point_x - canvas["x"])) < 3
    assert abs(ring_y.mean() - (point_y - canvas["y"])) < 3
    assert card.locator("img").get_attribute("src").startswith("data:image/jpeg;base64,")
    values = card.locator("td").all_inner_texts()
    described = explorer.data.describe(row)
    assert described["style"] in values and described["artist"] in values


def test_lasso_selects_the_images_inside_and_the_grid_shows_them(explorer):
    vertices, expected = a_clear_lasso(explorer)
    explorer.lasso(vertices)
    assert explorer.selected_count() == len(expected)
    explorer.page.locator(".fse-grid .fse-tile").first.wait_for()
    shown = explorer.rows_of(".fse-grid .fse-tile")
    assert shown == sorted(expected)[:24]
    counts = explorer.page.locator(".fse-counts td").all_inner_texts()
    top_style = explorer.data.table["style"].iloc[expected].value_counts().index[0]
    assert top_style in counts
    explorer.page.screenshot(path=ARTIFACTS / "lasso-selection.png", full_page=True)


def test_a_lasso_drawn_over_points_leaves_the_hover_card_as_it_was(explorer):
    """The pointer rests on points while a lasso is drawn, and the card stays as it was: only
    a pointer that is not dragging is looked up (answering every step of a lasso queued work
    ahead of it)."""
    coords = explorer.coords()
    screen = np.array([explorer.to_screen(float(x), float(y)) for x, y in coords])
    frame = explorer.frame()
    spots = [(frame["left"] + fx * frame["width"], frame["top"] + fy * frame["height"])
             for fx in np.linspace(0.2, 0.8, 4) for fy in np.linspace(0.2, 0.8, 4)]
    crossed = {int(np.argmin(np.hypot(*(screen - spot).T))) for spot in spots} - {17}
    explorer.hover(17)
    explorer.page.locator(".fse-hover .fse-card[data-row='17']").wait_for()
    explorer.tool("Lasso Select")
    explorer.page.mouse.move(*screen[17], steps=4)
    explorer.page.mouse.down()
    explorer.page.mouse.move(screen[17][0] + 6, screen[17][1] + 6)  # the drag begins
    shown = []
    for row in crossed:
        explorer.page.mouse.move(*screen[row], steps=4)
        explorer.page.wait_for_timeout(400)  # resting on a point, mid-drag
        shown.append(explorer.rows_of(".fse-hover .fse-card"))
    explorer.page.mouse.move(*screen[17], steps=4)
    explorer.page.mouse.up()
    explorer.page.wait_for_timeout(800)
    assert shown == [[17]] * len(crossed)
    assert explorer.rows_of(".fse-hover .fse-card") == [17]
    row = min(crossed)
    explorer.page.mouse.move(*screen[row], steps=4)  # not dragging: the card follows
    explorer.page.locator(f".fse-hover .fse-card[data-row='{row}']").wait_for()


def test_box_selection_selects_the_images_inside_the_box(explorer):
    coords = explorer.coords()
    corner, opposite = (-0.6, -0.2), (0.2, 0.6)
    inside = ((coords[:, 0] >= corner[0]) & (coords[:, 0] <= opposite[0])
              & (coords[:, 1] >= corner[1]) & (coords[:, 1] <= opposite[1]))
    explorer.drag_box(explorer.to_screen(*corner), explorer.to_screen(*opposite))
    assert explorer.selected_count() == inside.sum()
    # the count shows beside the map; its images are in the Selection tab, below the fold
    page, height = explorer.page, explorer.page.viewport_size["height"]
    note = page.locator(".fse-selection-note")
    expect(note).to_contain_text(f"{inside.sum():,} of {len(coords):,} images selected")
    assert note.bounding_box()["y"] + 20 <= height, "the count should be beside the map"
    page.locator(".fse-show-selection button").click()
    page.wait_for_timeout(1_500)  # a smooth scroll
    first = page.locator(".fse-grid .fse-tile").first.bounding_box()
    assert 0 <= first["y"] and first["y"] + 40 <= height, (
        f"the selection's first image is at y = {first['y']:.0f} in a {height}-px window")


def test_selection_is_kept_when_the_method_and_colour_change(explorer):
    vertices, expected = a_clear_lasso(explorer)
    explorer.lasso(vertices)
    assert explorer.selected_count() == len(expected)
    before = explorer.map_pixels()
    explorer.choose_method("pca" if explorer.method != "pca" else "umap")
    explorer.choose("fse-color-by", "artist")
    explorer.page.locator(".fse-legend-title").get_by_text("artist", exact=True).wait_for()
    explorer.page.wait_for_timeout(1_500)
    assert explorer.selected_count() == len(expected)
    after = explorer.map_pixels()
    assert np.abs(after - before).sum(axis=2).astype(bool).sum() > 200
    assert explorer.rows_of(".fse-grid .fse-tile") == sorted(expected)[:24]


def test_clicking_a_point_shows_its_neighbours_with_itself_first(explorer):
    row = 30
    explorer.click(row)
    focus = explorer.page.locator(f".fse-focus .fse-card[data-row='{row}']")
    focus.wait_for()
    tiles = explorer.page.locator(".fse-neighbour .fse-tile span")
    tiles.first.wait_for()
    captions = tiles.all_inner_texts()
    assert len(captions) == 12
    similarities = [float(c.split(" · ")[0]) for c in captions]
    assert similarities == sorted(similarities, reverse=True) and similarities[0] < 1.0001
    neighbours = explorer.rows_of(".fse-neighbour .fse-tile")
    assert row not in neighbours and len(set(neighbours)) == 12


def test_clicking_a_grid_image_shows_its_neighbours(explorer):
    vertices, expected = a_clear_lasso(explorer)
    explorer.lasso(vertices)
    explorer.page.locator(".fse-grid .fse-tile").first.wait_for()
    first = explorer.rows_of(".fse-grid .fse-tile")[0]
    explorer.page.locator(".fse-grid-neighbours button").first.click()
    explorer.page.locator(f".fse-focus .fse-card[data-row='{first}']").wait_for()


def test_filters_and_text_search_change_the_count_and_dim_the_map(explorer):
    table = explorer.data.table
    before = explorer.map_pixels()
    explorer.page.locator(".fse-filter-style input").click()
    explorer.page.locator(".fse-filter-style .choices__item--choice", has_text="Baroque").click()
    baroque = int((table["style"] == "Baroque").sum())
    explorer.page.locator(".fse-match b").get_by_text(str(baroque), exact=True).wait_for()
    assert explorer.match_count() == baroque
    explorer.page.keyboard.press("Escape")
    dimmed = explorer.map_pixels()
    for _ in range(40):  # the map's new image arrives after the count, later on a busy machine
        if coloured(dimmed) < coloured(before) / 3:
            break
        explorer.page.wait_for_timeout(500)
        dimmed = explorer.map_pixels()
    assert coloured(dimmed) < coloured(before) / 3, "points outside the filter should be grey"

    artist = table.loc[table["style"] == "Baroque", "artist"].iloc[0]
    explorer.page.locator(".fse-search input").fill(artist)
    explorer.page.keyboard.press("Enter")
    both = int(((table["style"] == "Baroque") & (table["artist"] == artist)).sum())
    assert both < baroque
    explorer.page.locator(".fse-match b").get_by_text(str(both), exact=True).wait_for()
    assert explorer.match_count() == both


def coloured(pixels: np.ndarray) -> int:
    """Pixels of a saturated colour (points in their colour, not grey or white)."""
    return int(((pixels.max(axis=2) - pixels.min(axis=2)) > 40).sum())


def test_export_holds_the_selected_images(explorer):
    vertices, expected = a_clear_lasso(explorer)
    explorer.lasso(vertices)
    explorer.selected_count()
    with explorer.page.expect_download() as download:
        explorer.page.locator(".fse-export-csv button").click()
    exported = pd.read_csv(download.value.path())
    ids = explorer.data.table[ID_COLUMN].iloc[expected]
    assert sorted(exported[ID_COLUMN]) == sorted(ids)
    shown = explorer.method  # the coordinates of the map on screen
    assert {"image_path", "style", "artist", f"{shown}_x", f"{shown}_y"} <= set(exported.columns)
    assert "row" not in exported.columns  # images are named by sample id, not row


def test_the_view_lives_in_the_url(explorer, browser):
    vertices, expected = a_clear_lasso(explorer)
    explorer.lasso(vertices)
    explorer.selected_count()
    explorer.choose("fse-color-by", "artist")
    explorer.click(5)
    explorer.page.locator(".fse-focus .fse-card[data-row='5']").wait_for()
    # the colour change and the click are separate events the server may finish in either
    # order: wait for the URL to hold the whole view, not just the last part of it
    focus = f"focus={explorer.data.sample_id(5)}"  # images are named by sample id, not row
    explorer.page.wait_for_function(
        f"() => ['color=artist', 'sel=', '{focus}'].every(p => window.location.search.includes(p))")
    url = explorer.page.url
    assert re.search(r"[?&]color=artist", url) and "sel=" in url and focus in url

    shared = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        again = ExplorerPage(shared, explorer.url, explorer.data.store.root)
        shared.goto(url, wait_until="networkidle")
        shared.locator(".fse-focus .fse-card[data-row='5']").wait_for(timeout=60_000)
        assert again.selected_count() == len(expected)
        assert shared.locator(".fse-color-by select").input_value() == "artist"
    finally:
        shared.close()


def test_clicking_a_separability_cell_switches_the_map_to_that_layer_and_attribute(explorer):
    spaces = explorer.data.store.spaces()
    layers = [column_name(explorer.data, space) for space in spaces]  # as the strip names them
    assert len(layers) > 1
    before = explorer.map_pixels()  # (screenshots scroll: take it before measuring positions)
    explorer.page.get_by_text("Layers", exact=True).click()
    heatmap = explorer.page.locator(".fse-separability canvas").first
    heatmap.wait_for(state="visible")
    heatmap.scroll_into_view_if_needed()
    plots = explorer.page.evaluate(  # every categorical plot's frame and factors
        """() => { const found = [];
          const visit = (v) => { if (!v) return; const t = v.model ? v.model.type : "";
            if ((t === "Plot" || t === "Figure") && v.frame.x_range.factors) {
              const b = v.frame.bbox, c = v.canvas_view.el.getBoundingClientRect();
              found.push({left: c.left + b.x0, top: c.top + b.y0, width: b.width,
                          height: b.height, columns: v.frame.x_range.factors,
                          rows: v.frame.y_range.factors}); }
            for (const child of (v.child_views ?? [])) visit(child); };
          for (const r of Object.values(window.Bokeh.index)) visit(r);
          return found; }""")
    frame = next(p for p in plots if "artist" in p["rows"])  # the separability heatmap
    assert frame["columns"] == layers  # by model, shallow to deep
    target = next(s for s in explorer.data.store.spaces() if s.pretrained)
    column, row = spaces.index(target), frame["rows"].index("artist")
    x = frame["left"] + (column + 0.5) * frame["width"] / len(frame["columns"])
    y = frame["top"] + frame["height"] - (row + 0.5) * frame["height"] / len(frame["rows"])
    explorer.page.mouse.click(x, y)
    explorer.page.locator(".fse-legend-title").get_by_text("artist", exact=True).wait_for()
    expect(explorer.page.locator(".fse-space select option:checked")).to_have_text(
        explorer.data.space_label(target))
    expect(explorer.page.locator(".fse-color-by select")).to_have_value("artist")
    expect(explorer.page.locator(".fse-space select")).to_have_value(
        explorer.data.space_label(target))
    assert "artist" in explorer.page.locator(".fse-sep-cell").inner_text()
    explorer.page.wait_for_timeout(1_500)  # the page scrolls up to the map, smoothly
    shown = explorer.page.locator(".fse-map").bounding_box()
    assert 0 <= shown["y"] <= explorer.page.viewport_size["height"] / 2, (
        f"the map the cell changed is at y = {shown['y']:.0f}, out of view")
    assert (abs(explorer.map_pixels() - before).sum(axis=2) > 0).sum() > 200


def test_selecting_a_cluster_shows_what_it_over_represents(explorer):
    space = SpaceKey.parse(explorer.space)  # the clusters of the space shown
    meta = explorer.data.store.meta(explorer.data.store.clusters_path(space))
    enriched = sorted({r["cluster"] for r in meta["enrichment"]})
    assert enriched, "the test store's clusters should over-represent something"
    explorer.page.locator(".fse-select-attribute select").select_option("cluster")
    explorer.page.locator(".fse-select-value select").select_option(f"cluster {enriched[0]}")
    explorer.page.locator(".fse-select-go button").click()
    size = int((explorer.data.clusters(space).cat.codes == enriched[0]).sum())
    assert explorer.selected_count() == size
    table = explorer.page.locator(".fse-enrichment")
    table.wait_for()
    assert f"cluster {enriched[0]}" in table.inner_text()
    first = min((r for r in meta["enrichment"] if r["cluster"] == enriched[0]),
                key=lambda r: r["q_value"])
    assert str(first["value"]) in table.locator("td").all_inner_texts()


def test_the_map_asks_for_a_zoom_s_sharp_image_soon_after_the_wheel_rests(explorer):
    """Bokeh asks for the render of a wheel zoom once the wheel has rested for the figure's
    `lod_timeout`; set through HoloViews' option (a hook's setting was overwritten), 150 ms in
    place of Bokeh's 500 took a zoom's new image at 1M points from 735 to 376 ms."""
    timeouts = explorer.page.evaluate(
        f"() => ({MAP_PLOTS_JS})('fse-map').map((view) => view.model.lod_timeout)")
    assert timeouts and set(timeouts) == {ZOOM_SETTLE_MS}
