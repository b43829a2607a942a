"""The explorer's data layer without a browser: look-ups, filters, links, placing new points,
and the explorer as a notebook object."""

from __future__ import annotations

import dataclasses
import gc
import re

import numpy as np
import pandas as pd
import panel as pn
import pytest

from explorer.data import load_explorer_data
from explorer.geometry import PointIndex
from explorer.quality_view import first_with_findings
from explorer.url_state import MAX_SELECTION_CHARS, decode_ids, encode_ids
from precompute.store import SpaceKey
from tests.browser.explorer_page import points_inside

SPACE = SpaceKey("efficientnet_lite0/pretrained", "penultimate")


def test_lasso_rows_match_the_even_odd_rule_on_random_points():
    rng = np.random.default_rng(1)
    points = rng.uniform(-1, 1, size=(3_000, 2)).astype(np.float32)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 11))
    radii = rng.uniform(0.3, 0.9, 11)
    polygon = np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])
    index = PointIndex(points)
    found = set(index.in_polygon(polygon[:, 0], polygon[:, 1]).tolist())
    expected = set(np.flatnonzero(points_inside(polygon, points)).tolist())
    assert len(expected) > 300
    assert len(found ^ expected) <= 2  # rasterised at 1/2048 of the lasso: boundary only


def test_box_rows_match_a_test_of_every_point():
    rng = np.random.default_rng(3)
    points = rng.uniform(-1, 1, size=(20_000, 2)).astype(np.float32)
    index = PointIndex(points)
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    for x0, x1, y0, y1 in rng.uniform(-1.1, 1.1, size=(20, 4)):
        expected = np.flatnonzero((x >= min(x0, x1)) & (x <= max(x0, x1))
                                  & (y >= min(y0, y1)) & (y <= max(y0, y1)))
        assert np.array_equal(index.in_box(x0, y0, x1, y1), expected)
    left, bottom = x[7], y[7]  # a corner on a point keeps it; a hair beyond leaves it out
    assert 7 in index.in_box(left, bottom, left + 0.1, bottom + 0.1)
    assert 7 not in index.in_box(np.nextafter(left, 2), bottom, left + 0.1, bottom + 0.1)


def test_nearest_point_respects_the_radius_and_the_filter():
    index = PointIndex(np.array([[0, 0], [1, 0], [0.05, 0]], dtype=np.float32))
    assert index.nearest(0.01, 0, radius=0.1) == 0
    assert index.nearest(0.5, 0.5, radius=0.1) is None
    assert index.nearest(0.01, 0, radius=0.1, among=np.array([False, True, True])) == 2


def test_selection_round_trips_through_the_url_by_sample_id():
    ids = np.array([0, 3, 4, 9, 2**63 + 5, 2**64 - 1], dtype=np.uint64)
    assert decode_ids(encode_ids(ids)).tolist() == ids.tolist()
    shuffled = np.array([9, 3, 0, 3], dtype=np.uint64)
    assert encode_ids(shuffled) == encode_ids(np.array([0, 3, 9], dtype=np.uint64))
    assert decode_ids("not base64 at all!").tolist() == []


def test_a_link_names_the_same_images_after_a_rebuild_reorders_them(built_store):
    data = load_explorer_data(str(built_store))
    rows = np.array([2, 5, 40])
    text = encode_ids(data.id_numbers[rows])
    moved = dataclasses.replace(data, table=data.table.iloc[::-1].reset_index(drop=True),
                                _derived={})
    found = moved.rows_of_ids(decode_ids(text))
    assert sorted(moved.table["sample_id"].iloc[found]) == sorted(
        data.table["sample_id"].iloc[rows])
    assert data.rows_of_ids(data.id_number(data.sample_id(7))).tolist() == [7]
    assert data.rows_of_ids(data.id_number("ffffffffffffffff")).tolist() == []
    assert data.id_number("1e5").tolist() == []  # not a sample id: Panel's parse of 100000.0


def test_a_selection_too_long_for_a_link_is_left_out():
    ids = np.random.default_rng(2).integers(0, 2**63, 300_000, dtype=np.uint64)
    assert len(encode_ids(ids)) > MAX_SELECTION_CHARS
    assert encode_ids(ids, MAX_SELECTION_CHARS) is None
    few = ids[:3_000]  # a few thousand images fit
    assert np.array_equal(decode_ids(encode_ids(few, MAX_SELECTION_CHARS)), np.sort(few))


def test_the_grid_refills_its_tiles_page_by_page(built_store):
    from explorer.page import new_state
    from explorer.selection import PAGE_SIZE, selection_panel

    data = load_explorer_data(str(built_store.resolve()))
    state = new_state(data)
    panel = selection_panel(data, state)
    grid, following = panel.objects[-1], panel.objects[-2][2]

    def shown() -> list[int]:
        return [int(re.search(r"data-row='(\d+)'", tile[0].object).group(1))
                for tile in grid if tile.visible]

    rows = np.arange(5, 5 + PAGE_SIZE + 6)
    state.select(rows[::-1])
    assert shown() == rows[:PAGE_SIZE].tolist()
    tiles = list(grid)
    following.clicks += 1
    assert shown() == rows[PAGE_SIZE:].tolist()
    assert all(tile[0].object == "" for tile in grid if not tile.visible)
    state.select(np.array([40, 2, 30]))
    assert shown() == [2, 30, 40]
    assert list(grid) == tiles, "the same tiles, refilled"
    grid[1][1].clicks += 1  # the second tile's "neighbours" button
    assert state.focus == 30


def test_filters_and_search_combine(built_store):
    data = load_explorer_data(str(built_store.resolve()))
    styles = data.table["style"].astype(str)
    mask = data.filter_mask({"style": ["Baroque", "Rococo"]}, "")
    assert mask.sum() == styles.isin(["Baroque", "Rococo"]).sum()
    artist = data.table.loc[styles == "Rococo", "artist"].iloc[0]
    both = data.filter_mask({"style": ["Baroque", "Rococo"]}, artist.upper())
    assert both.sum() == ((styles == "Rococo") & (data.table["artist"] == artist)).sum()
    assert data.filter_mask({}, "") is None


def test_a_stored_image_is_placed_on_its_own_point(built_store):
    data = load_explorer_data(str(built_store.resolve()))
    vector = np.asarray(data.store.load_embeddings(SPACE)[7], dtype=np.float32)
    x, y = data.place(SPACE, "pca", vector)
    assert np.allclose((x, y), data.coords(SPACE, "pca")[7], atol=1e-3)


def test_the_explorer_renders_outside_a_server_as_in_a_notebook(built_store):
    from explorer.page import Explorer

    explorer = Explorer(store=str(built_store))
    root = pn.panel(explorer).get_root()
    assert root is not None and len(list(root.references())) > 50
    # the fine-tuned space
    assert explorer.state.space == "efficientnet_lite0/finetuned-style-head/penultimate"


def test_the_maps_events_hover_click_lasso_and_box_as_bokeh_sends_them(built_store):
    """Real Bokeh events on the rendered map (as a server passes them on): outside a server
    each is answered at once."""
    from bokeh.events import DoubleTap, MouseMove, PanEnd, PanStart, SelectionGeometry
    from bokeh.models import Plot

    from explorer.page import Explorer

    explorer = Explorer(store=str(built_store))
    root = pn.panel(explorer).get_root()
    map_panel, state = explorer.map, explorer.state
    figure = next(plot for plot in root.select({"type": Plot}) if plot.id in map_panel._rings)
    coords = explorer.data.coords(*map_panel.shown())
    x, y = (float(v) for v in coords[17])

    figure._trigger_event(MouseMove(figure, x=x, y=y))
    assert map_panel.hovered == 17
    figure._trigger_event(DoubleTap(figure, x=x, y=y))  # a second click in quick succession
    assert state.focus == 17
    x2, y2 = (float(v) for v in coords[40])
    figure._trigger_event(PanStart(figure, x=x2, y=y2))  # the press is looked up
    assert map_panel.hovered == 40
    figure._trigger_event(MouseMove(figure, x=x, y=y))  # a move while dragging is not
    assert map_panel.hovered == 40
    figure._trigger_event(PanEnd(figure, x=x, y=y))

    polygon = np.array([[-0.5, -0.5], [0.4, -0.6], [0.5, 0.5], [-0.4, 0.4]])
    lasso = {"type": "poly", "x": polygon[:, 0].tolist(), "y": polygon[:, 1].tolist()}
    figure._trigger_event(SelectionGeometry(figure, geometry=lasso, final=True))
    inside = np.flatnonzero(points_inside(polygon, coords))
    assert len(inside) > 10
    assert len(set(state.selection.tolist()) ^ set(inside.tolist())) <= 2  # boundary only
    chosen = state.selection.copy()
    for unfinished in (SelectionGeometry(figure, geometry=lasso, final=False),
                       SelectionGeometry(figure, geometry={"type": "poly", "x": [0.0, 0.1],
                                                           "y": [0.0, 0.1]}, final=True)):
        figure._trigger_event(unfinished)
        assert np.array_equal(state.selection, chosen)
    box = {"type": "rect", "x0": 0.2, "x1": -0.3, "y0": 0.5, "y1": -0.1}
    figure._trigger_event(SelectionGeometry(figure, geometry=box, final=True))
    in_box = ((coords[:, 0] >= -0.3) & (coords[:, 0] <= 0.2)
              & (coords[:, 1] >= -0.1) & (coords[:, 1] <= 0.5))
    assert state.selection.tolist() == np.flatnonzero(in_box).tolist()


def test_turning_compare_on_again_shows_the_same_second_map(built_store):
    from explorer.compare_view import MapArea
    from explorer.page import Explorer

    explorer = Explorer(store=str(built_store))
    area = MapArea(explorer.data, explorer.state, explorer.map, pn.Column())
    watchers = len(explorer.state.param.watchers.get("space_b", {}).get("value", []))
    explorer.state.compare = True
    second = area.second
    assert second is not None and area.box.objects[1].objects[1] is second.pane
    built = len(explorer.state.param.watchers["space_b"]["value"])
    for on in (False, True, False, True):
        explorer.state.compare = on
        assert len(area.box.objects) == (3 if on else 2)
    assert area.second is second, "built once, not again at each toggle"
    assert len(explorer.state.param.watchers["space_b"]["value"]) == built > watchers


@pytest.mark.parametrize("attribute", ["style", "year"])
def test_few_points_in_view_are_drawn_as_glyphs(built_store, attribute):
    from explorer.scatter import MapRequest, render_map

    data = load_explorer_data(str(built_store.resolve()))
    extent = (-1.05, 1.05)
    overlay = render_map(data, MapRequest(str(SPACE), "pca", attribute, extent, extent, 40, 30))
    assert len(overlay.get(1)) == 66


@pytest.mark.parametrize("attribute", ["style", "year"])
def test_the_image_fades_everything_but_the_selection(built_store, attribute):
    from explorer.scatter import MapRequest, render_map

    data = load_explorer_data(str(built_store.resolve()))
    extent = (-1.05, 1.05)
    request = MapRequest(str(SPACE), "pca", attribute, extent, extent, 200, 150, glyph_limit=0)
    overlay = render_map(data, request)
    assert len(overlay.get(1)) == 0  # many points in view (limit 0): an image, no glyphs
    painted = overlay.get(0).dimension_values("A", flat=False) > 0
    assert painted.sum() > 66
    chosen = np.arange(10)
    faded = render_map(data, dataclasses.replace(request, selection=chosen)).get(0)
    strong = faded.dimension_values("A", flat=False) >= 120
    assert 0 < strong.sum() < painted.sum() / 2, "only the selected points keep full colour"


def test_an_isolated_value_keeps_its_colour_and_the_rest_fade(built_store):
    """In the image drawn at large sizes (and in the glyphs), the points of the values
    isolated in the legend are drawn in colour over the others' faded grey; with a selection,
    only the selected points among them."""
    from explorer.scatter import MapRequest, highlighted_rows, render_map

    data = load_explorer_data(str(built_store.resolve()))
    extent = (-1.05, 1.05)
    request = MapRequest(str(SPACE), "pca", "style", extent, extent, 200, 150, glyph_limit=0)
    styles = data.table["style"].astype(str)
    baroque = np.flatnonzero(styles == "Baroque")
    isolated = dataclasses.replace(request, isolated=("Baroque",))
    assert highlighted_rows(data, isolated).tolist() == baroque.tolist()
    both = dataclasses.replace(isolated, selection=np.arange(30))
    assert highlighted_rows(data, both).tolist() == baroque[baroque < 30].tolist()
    assert highlighted_rows(data, dataclasses.replace(request, color_by="year",
                                                      isolated=("1900",))) is None

    def strong(overlay_request):
        image = render_map(data, overlay_request).get(0)
        return int((image.dimension_values("A", flat=False) >= 120).sum())

    assert 0 < strong(isolated) < strong(request) / 4, "one style of 11 keeps full colour"
    glyphs = render_map(data, dataclasses.replace(isolated, glyph_limit=1_000)).get(1)
    alpha = glyphs.dimension_values("alpha")
    assert (alpha == 1.0).sum() == len(baroque) and (alpha < 0.5).sum() == 66 - len(baroque)


def test_zoomed_in_on_few_points_the_map_draws_their_images_framed_in_their_colour(
        built_store):
    from explorer.colours import category_colours
    from explorer.point_table import rgb
    from explorer.scatter import EXTENT, MapRequest, render_map

    data = load_explorer_data(str(built_store.resolve()))
    whole = MapRequest(str(SPACE), "pca", "style", EXTENT, EXTENT, 400, 300)
    assert len(render_map(data, whole).get(1)) == 66, "the whole map stays an overview of dots"
    coords = data.coords(SPACE, "pca")
    row = int(np.argmin(np.abs(coords[:, 0]) + np.abs(coords[:, 1])))  # near the centre
    x, y = coords[row]
    view = dataclasses.replace(whole, x_range=(x - 0.5, x + 0.5), y_range=(y - 0.5, y + 0.5))
    overlay = render_map(data, view)
    assert len(overlay.get(1)) == 0, "images, not glyphs"
    rgba = overlay.get(0).data
    assert rgba.shape == (300, 400, 4)
    ys, xs = np.nonzero(rgba[..., 3])
    assert len(ys) > 24 * 24, "at least one image is drawn"
    distinct = len(np.unique(rgba[ys, xs, :3], axis=0))
    assert distinct > 200, "photographs, not a palette of dots"
    frame = category_colours(list(data.table["style"].cat.categories))
    borders = {tuple(rgb(frame[s])) for s in data.table["style"].astype(str)}
    edge = [tuple(p) for p in rgba[ys, xs, :3][:50]]  # top rows of the first image: its frame
    assert any(p in borders for p in edge)
    outside = dataclasses.replace(view, mask=np.zeros(len(data), dtype=bool))
    faded = render_map(data, outside).get(0).data
    assert 0 < faded[..., 3].max() < 255, "images outside the filter are faded"


def test_sessions_share_the_whole_map_and_nothing_narrower(built_store):
    from explorer.scatter import MapRequest, map_image, render_map

    data = load_explorer_data(str(built_store.resolve()))
    extent = (-1.05, 1.05)
    whole = MapRequest(str(SPACE), "pca", "style", extent, extent, 120, 90, glyph_limit=0,
                       selection=np.empty(0, dtype=np.int64))  # as a session's state holds it
    shared = render_map(data, whole).get(0).data
    assert render_map(data, dataclasses.replace(whole, selection=None)).get(0).data is shared
    assert not shared.flags.writeable
    assert np.array_equal(shared, map_image(data, whole)), "the same pixels as a fresh render"
    narrower = [
        dataclasses.replace(whole, selection=np.arange(5)),
        dataclasses.replace(whole, mask=np.arange(len(data)) % 2 == 0),
        dataclasses.replace(whole, x_range=(-0.5, 0.5)),
    ]
    for request in narrower:
        image = render_map(data, request).get(0).data
        assert not np.shares_memory(image, shared)
        assert render_map(data, request).get(0).data is not image
    other_size = dataclasses.replace(whole, width=60)
    smaller = render_map(data, other_size).get(0).data
    assert smaller.shape == (90, 60, 4) and render_map(data, other_size).get(0).data is smaller


def test_hovers_and_renders_leave_no_reference_on_the_shared_tables(built_store):
    """Every session reads the one table of the process: a view of it per hover or render
    (`table[name]`, `frame.iloc[a:b]`) would leave a weak reference on its columns, which
    pandas keeps for hundreds of reads, each holding a page of freed session memory."""
    from explorer.scatter import MapRequest, render_map

    data = load_explorer_data(str(built_store.resolve()))
    zoomed = MapRequest(str(SPACE), "pca", "style", (-0.6, 0.4), (-0.5, 0.5), 120, 90,
                        glyph_limit=0, mask=np.arange(len(data)) % 3 > 0)
    render_map(data, zoomed)  # what the process shares made once
    gc.collect()
    shared = [o for o in gc.get_objects() if type(o) in (pd.DataFrame, pd.Series)]

    def references() -> int:  # pandas' own record of the views of each block
        return sum(len(block.refs.referenced_blocks) for o in shared for block in o._mgr.blocks)

    before = references()
    for row in range(len(data)):
        data.describe(row, SPACE)
        data.sample_id(row)
    for left in np.linspace(-1, 0.5, 12):
        render_map(data, dataclasses.replace(zoomed, x_range=(left, left + 0.5)))
    assert references() == before
    assert not data.coords(SPACE, "pca").flags.writeable, "shared by sessions: read-only"


def test_predictions_are_attributes_and_confusion_cells_select_their_test_images(built_store):
    from explorer.metrics_view import confused_rows, confusion_cells

    data = load_explorer_data(str(built_store.resolve()))
    meta = data.store.meta(data.store.predictions_path("efficientnet_lite0/finetuned-style-head"))
    assert data.kinds["predicted style"] == data.kinds["style correct"] == "categorical"
    assert data.kinds["style confidence"] == "numeric"
    table = data.table
    correct = (table["predicted style"].astype(str) == table["style"].astype(str))
    assert ((table["style correct"] == "yes") == correct).all()
    assert table["style confidence"].between(0, 1).all()

    cells = confusion_cells(meta["metrics"]["confusion"])
    assert cells["count"].sum() == meta["metrics"]["test_count"] == 22
    for cell in cells[cells["count"] > 0].itertuples():
        rows = confused_rows(data, "style", cell.true, cell.predicted)
        assert len(rows) == cell.count
        assert (table["style split"].iloc[rows] == "test").all()
    diagonal = cells[cells["true"] == cells["predicted"]]["count"].sum()
    assert diagonal / 22 == pytest.approx(meta["metrics"]["accuracy"])


def test_each_lone_point_is_painted_in_its_legend_colour(built_store):
    from explorer.colours import category_colours
    from explorer.scatter import MapRequest, render_map

    data = load_explorer_data(str(built_store.resolve()))
    width, height, extent = 200, 150, (-1.05, 1.05)
    request = MapRequest(str(SPACE), "pca", "style", extent, extent, width, height,
                         glyph_limit=0)
    rgba = render_map(data, request).get(0).data  # rows from the top, as sent to the browser
    coords = data.coords(SPACE, "pca")
    columns = ((coords[:, 0] - extent[0]) / (extent[1] - extent[0]) * width).astype(int)
    rows = height - 1 - ((coords[:, 1] - extent[0]) / (extent[1] - extent[0]) * height).astype(int)
    pixel = rows * width + columns
    lone = np.flatnonzero(np.bincount(pixel, minlength=width * height)[pixel] == 1)
    colours = category_colours(list(data.table["style"].cat.categories))
    matches = [
        tuple(rgba[rows[i], columns[i], :3]) == tuple(
            int(colours[data.table["style"].iloc[i]][k:k + 2], 16) for k in (1, 3, 5))
        for i in lone
    ]
    assert len(lone) > 30 and np.mean(matches) > 0.8


def test_the_shared_caches_keep_the_most_recently_used_and_make_each_value_once():
    import threading
    import time

    from explorer.bounded_cache import BoundedCache

    cache: BoundedCache[str] = BoundedCache(2)
    made: list[str] = []

    def make(key: str):
        def build() -> str:
            made.append(key)
            time.sleep(0.05)  # long enough for the other threads to ask meanwhile
            return key.upper()
        return build

    threads = [threading.Thread(target=cache.get, args=("a", make("a"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["a"]
    cache.get("b", make("b"))
    assert cache.get("a", make("a")) == "A"  # a is now the most recently used
    cache.get("c", make("c"))
    assert "a" in cache and "c" in cache and "b" not in cache and len(cache) == 2


def test_a_projections_reducer_is_unpickled_once(built_store):
    data = load_explorer_data(str(built_store.resolve()))
    vector = np.asarray(data.store.load_embeddings(SPACE)[0], dtype=np.float32)
    first = data.place(SPACE, "pca", vector)
    reducer_file = data.store.reducer_path(SPACE, "pca")
    moved = reducer_file.with_suffix(".moved")
    reducer_file.rename(moved)
    try:
        assert data.place(SPACE, "pca", vector) == first  # from memory, not the file
    finally:
        moved.rename(reducer_file)


def test_the_quality_tab_opens_on_the_first_kind_with_findings():
    assert first_with_findings([0, 0, 257, 5]) == 2  # not an empty "Nothing found" list
    assert first_with_findings([3, 0, 1, 0]) == 0
    assert first_with_findings([0, 0, 0, 0]) == 0
