"""The Metrics view in a real browser: the fine-tuned model's scores, its confusion matrix
(a click selects those test images) and its per-class table."""

from __future__ import annotations

import pytest

from explorer.metrics_view import confusion_cells
from tests.browser.explorer_page import ExplorerPage
from tests.browser.server import ARTIFACTS

pytestmark = pytest.mark.browser

# Every categorical plot on the page: its factors and where each one's centre is on screen.
CATEGORICAL_PLOTS_JS = """() => { const found = [];
  const visit = (v) => { if (!v) return; const t = v.model ? v.model.type : "";
    if ((t === "Plot" || t === "Figure") && v.frame.x_range.factors) {
      const c = v.canvas_view.el.getBoundingClientRect();
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
    page.screenshot(path=ARTIFACTS / "metrics-view.png", full_page=True)

    page.locator(".fse-show-mistakes button").click()
    page.locator(".fse-legend-title").get_by_text("style correct", exact=True).wait_for()
    legend = page.locator(".fse-legend-value").all_inner_texts()
    assert any("yes" in value for value in legend) and any("no" in value for value in legend)
