"""Overlays on the map: each k-means cluster's most over-represented value written at its
centre, and density contours."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.clusters_view import SIGNIFICANT_Q, cluster_label_table
from explorer.density import LEVELS, contour_lines
from precompute.store import SpaceKey
from tests.browser.explorer_page import ExplorerPage

pytestmark = pytest.mark.browser

LABEL_TEXTS_JS = """() => { const found = [];
  for (const doc of window.Bokeh.documents) for (const model of doc._all_models.values())
    if (model.type === 'ColumnDataSource' && model.data.text) found.push(...model.data.text);
  return found; }"""


def test_cluster_labels_name_what_each_cluster_over_represents(served_store, built_store, page):
    explorer = ExplorerPage(page, served_store, built_store).open()
    space = SpaceKey.parse(explorer.space)
    table = cluster_label_table(explorer.data, space, explorer.method, "style")
    meta = explorer.data.store.meta(explorer.data.store.clusters_path(space))
    assert 0 < len(table) <= meta["k"]
    codes = explorer.data.clusters(space).cat.codes.to_numpy()
    coords = explorer.data.coords(space, explorer.method)
    for label in table.itertuples():
        value = label.text.split(" +")[0]
        record = next(r for r in meta["enrichment"] if r["attribute"] == "style"
                      and r["value"] == value and r["q_value"] <= SIGNIFICANT_Q)
        members = codes == record["cluster"]
        assert (label.x, label.y) == pytest.approx(tuple(np.median(coords[members], axis=0)))
        assert record["q_value"] == min(r["q_value"] for r in meta["enrichment"]
                                        if r["cluster"] == record["cluster"]
                                        and r["attribute"] == "style")

    assert explorer.page.evaluate(LABEL_TEXTS_JS) == []
    before = explorer.map_pixels()
    explorer.page.locator(".fse-cluster-labels input").check()
    explorer.page.wait_for_function(f"() => ({LABEL_TEXTS_JS})().length === {len(table)}")
    assert sorted(explorer.page.evaluate(LABEL_TEXTS_JS)) == sorted(table["text"])
    explorer.page.wait_for_timeout(1_000)
    assert (np.abs(explorer.map_pixels() - before).sum(axis=2) > 0).sum() > 100
    explorer.page.locator(".fse-cluster-labels input").uncheck()
    explorer.page.wait_for_function(f"() => ({LABEL_TEXTS_JS})().length === 0")


CONTOUR_LINES_JS = """() => { const found = [];
  for (const doc of window.Bokeh.documents) for (const model of doc._all_models.values())
    if (model.type === 'ColumnDataSource' && model.data.xs) found.push(...model.data.xs);
  return found.filter((line) => line.length > 1).length; }"""


def test_density_contours_are_drawn_around_where_images_crowd(served_store, built_store, page):
    explorer = ExplorerPage(page, served_store, built_store).open()
    space = SpaceKey.parse(explorer.space)
    expected = contour_lines(explorer.data, space, explorer.method)
    assert len(expected.split()) == len(LEVELS)
    assert explorer.page.evaluate(CONTOUR_LINES_JS) == 0
    before = explorer.map_pixels()
    explorer.page.locator(".fse-density-contours input").check()
    explorer.page.wait_for_function(f"() => ({CONTOUR_LINES_JS})() >= {len(LEVELS)}")
    explorer.page.wait_for_timeout(1_000)
    after = explorer.map_pixels()
    darker = (after.sum(axis=2) < before.sum(axis=2) - 60).sum()
    assert darker > 200, "the lines should darken the map where they run"
    explorer.page.locator(".fse-density-contours input").uncheck()
    explorer.page.wait_for_function(f"() => ({CONTOUR_LINES_JS})() === 0")
