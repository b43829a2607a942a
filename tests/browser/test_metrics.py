"""The Metrics view in a real browser: the fine-tuned model's scores, its confusion matrix
(a click selects those test images) and its per-class table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from explorer.metrics_view import confusion_cells
from precompute.cli import main
from precompute.store import Store
from tests.browser.explorer_page import ExplorerPage
from tests.browser.server import ARTIFACTS, panel_server
from tests.helpers import HEAD_TRAINING, write_config

pytestmark = pytest.mark.browser

# Every categorical plot on the page: its factors and where each one's centre is on screen.
CATEGORICAL_PLOTS_JS = """() => { const found = [];
  const visit = (v) => { if (!v) return; const t = v.model ? v.model.type : "";
    const c = v.canvas_view ? v.canvas_view.el.getBoundingClientRect() : null;
    if ((t === "Plot" || t === "Figure") && v.frame.x_range.factors && c.width > 0) {
      const f = v.frame, at = (scale, range, factor) => scale.compute(range.synthetic(factor));
      found.push({columns: f.x_range.factors, rows: f.y_range.factors,
                  x: f.x_range.factors.map((k) => c.left + at(f.x_scale, f.x_range, k)),
                  y: f.y_range.factors.map((k) => c.top + at(f.y_scale, f.y_range, k))}); }
    for (const child of (v.child_views ?? [])) visit(child); };
  for (const r of Object.values(window.Bokeh.index)) visit(r);
  return found; }"""


def test_the_metrics_view_shows_scores_a_clickable_confusion_matrix_and_classes(
    served_store, built_store, page
):
    explorer = ExplorerPage(page, served_store, built_store).open()
    store = explorer.data.store
    meta = store.meta(store.predictions_path("efficientnet_lite0/finetuned-style-head"))
    metrics = meta["metrics"]
    page.get_by_text("Metrics", exact=True).click()
    scores = page.locator(".fse-scores")
    scores.wait_for()
    assert f"{metrics['accuracy']:.3f}" in scores.inner_text()
    assert f"{metrics['f1_weighted']:.3f}" in scores.inner_text()
    assert metrics["test_with_duplicate_in_training"] == 0  # the 66 paintings have no copies
    assert "No test image has a near-duplicate in training" in scores.inner_text()
    classes = page.locator(".fse-per-class tr")
    assert classes.count() == len(metrics["per_class"]) + 1  # and the header
    page.locator(".fse-confusion canvas").first.wait_for(state="visible")
    page.locator(".fse-confusion").scroll_into_view_if_needed()
    page.wait_for_timeout(1_000)

    labels = [str(label) for label in metrics["confusion"]["labels"]]
    frame = next(p for p in page.evaluate(CATEGORICAL_PLOTS_JS)
                 if p["columns"] == labels and "artist" not in p["rows"])
    cells = confusion_cells(metrics["confusion"])
    cell = cells[cells["count"] > 0].iloc[0]
    column, row = frame["columns"].index(cell["predicted"]), frame["rows"].index(cell["true"])
    page.mouse.click(frame["x"][column], frame["y"][row])
    detail = page.locator(".fse-confusion-cell")
    detail.wait_for()
    assert f"{cell['count']:,} test images of {cell['true']}" in detail.inner_text()
    assert explorer.selected_count() == cell["count"]
    page.wait_for_timeout(1_500)  # the page scrolls up to the map, which shows them
    assert page.locator(".fse-map").bounding_box()["y"] >= 0, "the map should be in view"

    empty = cells[cells["count"] == 0].iloc[0]  # leaves the selection as it was
    page.locator(".fse-confusion").scroll_into_view_if_needed()
    page.wait_for_timeout(1_000)
    frame = next(p for p in page.evaluate(CATEGORICAL_PLOTS_JS)
                 if p["columns"] == labels and "artist" not in p["rows"])
    column, row = frame["columns"].index(empty["predicted"]), frame["rows"].index(empty["true"])
    page.mouse.click(frame["x"][column], frame["y"][row])
    detail.get_by_text("No test image of").wait_for()
    assert explorer.selected_count() == cell["count"]
    page.screenshot(path=ARTIFACTS / "metrics-view.png", full_page=True)

    page.locator(".fse-show-mistakes button").click()
    page.locator(".fse-legend-title").get_by_text("style correct", exact=True).wait_for()
    legend = page.locator(".fse-legend-value").all_inner_texts()
    assert any("yes" in value for value in legend) and any("no" in value for value in legend)


@pytest.fixture(scope="module")
def two_runs_store(built_store: Path, small_tree: Path, tmp_path_factory) -> Path:
    """The test store with a second run beside its head: the linear baseline on style."""
    folder = tmp_path_factory.mktemp("two-runs")
    store = folder / "store"
    shutil.copytree(built_store, store)
    linear = HEAD_TRAINING.replace('target = "style"',
                                   'target = "style"\nmodes = ["linear"]\nfolds = 3')
    config = write_config(folder / "config.toml", small_tree, extra=linear)
    assert main(["-q", "train", "--config", str(config), "--store", str(store)]) == 0
    return store


def test_the_chosen_runs_confusion_matrix_is_drawn_across_the_tab(two_runs_store, browser):
    """With several runs, the chosen one's details come from the Run selector, each in turn,
    and the page stays where it was (it jumped up as one run's details replaced another's).
    Opened after the Layers tab, the matrix was drawn a few pixels wide on a canvas of the
    tab's width (its plot sat in a FlexBox, outside the layout the tabs recompute); the drawn
    columns are measured, not the canvas."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        with panel_server(two_runs_store) as url:
            ExplorerPage(page, url, two_runs_store).open()
            page.get_by_text("Layers", exact=True).click()
            page.locator(".fse-separability canvas").first.wait_for(state="visible")
            page.get_by_text("Metrics", exact=True).click()
            choice = page.locator(".fse-run-select select")
            runs = choice.evaluate("select => [...select.options].map((option) => option.value)")
            assert len(runs) == 2, runs
            choice.scroll_into_view_if_needed()
            page.wait_for_timeout(1_000)
            for run in (runs[1], runs[0]):  # each run's details in turn, as a user compares
                before = choice.bounding_box()["y"]
                choice.select_option(run)
                page.locator(".fse-scores").get_by_text(run).wait_for()
                page.wait_for_timeout(1_000)
                moved = choice.bounding_box()["y"] - before
                assert abs(moved) <= 2, f"choosing {run} moved the selector by {moved:.0f} px"
                matrix = page.locator(".fse-confusion >> visible=true")
                matrix.locator("canvas").first.wait_for(state="visible")
                matrix.scroll_into_view_if_needed()
                page.wait_for_timeout(1_000)
                page.screenshot(path=ARTIFACTS / "metrics-two-runs.png")
                store = Store(two_runs_store)
                labels = [str(label) for label in store.meta(store.predictions_path(run))[
                    "metrics"]["confusion"]["labels"]]
                frame = next(p for p in page.evaluate(CATEGORICAL_PLOTS_JS)
                             if p["columns"] == labels and "artist" not in p["rows"])
                drawn = frame["x"][-1] - frame["x"][0]
                assert drawn >= 300, f"{run}'s matrix columns span {drawn:.0f} px"
    finally:
        context.close()
