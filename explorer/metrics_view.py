"""How well each training run recognises its target, on images it never trained on: the runs
side by side (the table `precompute compare` prints), then the chosen run's headline scores,
confusion matrix (click a cell to select those images on the map) and per-class table.
Computed by the train stage with scikit-learn; read here from the store."""

from __future__ import annotations

import html
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

from explorer.cards import placeholder
from explorer.colours import label_ink
from explorer.data import ExplorerData, correct_name, predicted_name, run_tags, split_name
from explorer.plot_hooks import page_scrolls_over
from explorer.state import ExplorerState
from precompute.compare import mean_spread, runs_table
from precompute.store import PENULTIMATE, SpaceKey

TEST = "test"
# The runs table keeps each figure on one line and scrolls sideways in a narrow window (at
# 900 px its last two columns were cut off)
RUNS_CSS = ":host { overflow-x: auto; } td, th { white-space: nowrap; }"


def metrics_panel(data: ExplorerData, state: ExplorerState) -> pn.viewable.Viewable:
    """The runs compared (by target, the most accurate first), and the details of one."""
    runs = runs_table(data.store)
    if runs.empty:
        return pn.pane.HTML(placeholder(
            "No fine-tuned model in this store: name a `[train] target` in the config and run "
            "`precompute train --store DIR`."))
    tags = run_tags(data.store)
    if len(runs) == 1:
        return model_metrics(data, state, runs["run"][0], tags[runs["run"][0]])
    chosen = pn.widgets.Select(label="Run", options=list(runs["run"]), value=runs["run"][0],
                               width=420, css_classes=["fse-run-select"])
    # Each run's details built when first chosen and kept, the chosen one shown: replacing one
    # run's details by another's emptied the tab for a moment, and the page, briefly shorter,
    # jumped upwards.
    details: dict[str, pn.viewable.Viewable] = {}
    shown = pn.Column(sizing_mode="stretch_width")

    def show(model: str) -> None:
        if model not in details:
            details[model] = model_metrics(data, state, model, tags[model])
            shown.append(details[model])
        details[model].visible = True  # before the others hide: the tab never gets shorter
        for each, panel in details.items():
            panel.visible = each == model

    chosen.param.watch(lambda event: show(event.new), "value")
    show(chosen.value)
    return pn.Column(
        pn.pane.HTML(runs_html(runs), sizing_mode="stretch_width", css_classes=["fse-runs"],
                     stylesheets=[RUNS_CSS]),
        chosen, shown,
        sizing_mode="stretch_width",
    )


def runs_html(runs: pd.DataFrame) -> str:
    """The runs side by side: accuracy and weighted F1 (± their spread over the folds), macro
    F1, training time and speed."""

    body = "".join(
        f"<tr><td>{html.escape(r.run)}</td><td>{html.escape(r.target)}</td>"
        f"<td>{r.images:,}{' out of fold' if r.folds > 1 else ' test'}</td>"
        f"<td>{mean_spread(r.accuracy, r.accuracy_std, r.folds)}</td>"
        f"<td>{mean_spread(r.f1_weighted, r.f1_weighted_std, r.folds)}</td>"
        f"<td>{r.f1_macro:.3f}</td><td>{r.train_seconds:.1f} s</td>"
        f"<td>{r.images_per_s:,.0f}</td><td>{html.escape(r.device)}</td></tr>"
        for r in runs.itertuples(index=False)
    )
    return ("<table class='fse-counts fse-runs-table'><tr>"
            "<th>run</th><th>target</th><th>images scored</th><th>accuracy</th>"
            "<th>weighted F1</th><th>macro F1</th><th>training</th><th>images/s</th>"
            f"<th>device</th></tr>{body}</table>")


def model_metrics(data: ExplorerData, state: ExplorerState, model: str, tag: str = ""
                  ) -> pn.Column:
    """Scores, confusion matrix and per-class table of one training run, whose prediction
    attributes end in `tag`."""
    meta = data.store.meta(data.store.predictions_path(model))
    target, metrics = meta["target"], meta["metrics"]
    cells = confusion_cells(metrics["confusion"])
    detail = pn.pane.HTML(placeholder("Click a cell of the matrix to select those test images."),
                          sizing_mode="stretch_width", css_classes=["fse-confusion-detail"])

    def clicked(x=None, y=None) -> None:
        if x is None or y is None:
            return
        truth, predicted = str(y), str(x)
        rows = confused_rows(data, target, truth, predicted, tag)
        which = f"<b>{html.escape(truth)}</b> predicted as <b>{html.escape(predicted)}</b>"
        if not len(rows):  # an empty cell leaves the selection as it was
            detail.object = (f"<div class='fse-confusion-cell'>No test image of {which}; the "
                             "selection is unchanged.</div>")
            return
        state.select(rows)
        state.show_map()
        detail.object = (f"<div class='fse-confusion-cell'>{len(rows):,} test images of "
                         f"{which}: selected on the map.</div>")

    show_mistakes = pn.widgets.Button(
        label="Colour the map by correct / wrong", css_classes=["fse-show-mistakes"], width=260)

    def colour_by_correctness(_event) -> None:
        changes = {"color_by": correct_name(target, tag)}
        space = str(SpaceKey(model, PENULTIMATE))
        if space in map(str, data.spaces):
            changes["space"] = space
        state.param.update(**changes)
        state.show_map()

    show_mistakes.on_click(colour_by_correctness)
    labels = metrics["confusion"]["labels"]
    heatmap = hv.HeatMap(cells, kdims=["predicted", "true"],
                         vdims=["share", "count"]).opts(
        cmap="Blues", colorbar=True, tools=["hover", "tap"], xrotation=45,
        invert_yaxis=True, responsive=True, min_height=320 + 12 * len(labels),
        clim=(0, 1), nonselection_alpha=0.6, min_width=560,
        title=f"{target}: test images by true and predicted class",
    )
    hv.streams.Tap(source=heatmap, x=None, y=None).add_subscriber(clicked)
    counted = cells[cells["count"] > 0].assign(
        ink=lambda cells: label_ink(cells["share"], dark_at_top=True))
    counts = hv.Labels(counted, kdims=["predicted", "true"],
                       vdims=["text", "ink"]).opts(text_font_size="8pt", text_color="ink")
    # The FlexBox wraps: in a narrow window the button goes below the scores. The matrix is
    # in a plain column: in a FlexBox its plot lost its frame once the Layers tab opened.
    return pn.Column(
        pn.FlexBox(pn.pane.HTML(scores_html(model, target, metrics), min_width=300,
                                sizing_mode="stretch_width", styles={"flex": "1 1 300px"}),
                   show_mistakes, flex_wrap="wrap", sizing_mode="stretch_width"),
        pn.pane.HoloViews((heatmap * counts).opts(hv.opts.Overlay(hooks=[page_scrolls_over])),
                          sizing_mode="stretch_width", min_height=320 + 12 * len(labels),
                          css_classes=["fse-confusion"]),
        pn.pane.HTML(per_class_html(metrics), width=420, css_classes=["fse-per-class"]),
        detail,
        sizing_mode="stretch_width",
    )


def confusion_cells(confusion: dict[str, Any]) -> pd.DataFrame:
    """One row per (true, predicted) pair: its count and its share of the true class."""
    labels = [str(label) for label in confusion["labels"]]
    matrix = np.asarray(confusion["matrix"], dtype=np.int64).reshape(len(labels), len(labels))
    totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    truth, predicted = np.meshgrid(labels, labels, indexing="ij")
    cells = pd.DataFrame({
        "true": truth.ravel(), "predicted": predicted.ravel(),
        "count": matrix.ravel(), "share": (matrix / totals).ravel(),
    })
    cells["text"] = cells["count"].astype(str)
    # HoloViews reshapes key columns; pandas' Arrow-backed strings cannot be reshaped.
    return cells.astype({"true": object, "predicted": object, "text": object})


def confused_rows(data: ExplorerData, target: str, truth: str, predicted: str, tag: str = ""
                  ) -> np.ndarray:
    """Rows of the test images whose `target` is `truth` and whose prediction (by the run
    whose attributes end in `tag`) is `predicted`."""
    split = split_name(target) + tag
    split = split if split in data.table else split_name(target)
    chosen = ((data.column(split) == TEST) & (data.column(target).astype(str) == truth)
              & (data.column(predicted_name(target, tag)).astype(str) == predicted))
    return np.flatnonzero(chosen.to_numpy())


def scores_html(model: str, target: str, metrics: dict[str, Any]) -> str:
    """The headline: accuracy, weighted and macro F1 on how many test images."""
    small = metrics.get("too_small") or []
    note = (f" Too small to test (trained on only): {html.escape(', '.join(map(str, small)))}."
            if small else "")
    folds = metrics.get("folds", 1)
    if folds > 1:
        scored = (f"every one of {metrics['test_count']:,} labelled images, each predicted by "
                  f"the model of the one of {folds} folds that never trained on it")
        scores = (f"accuracy <b>{metrics['accuracy']:.3f} ± {metrics['accuracy_std']:.3f}</b> · "
                  f"weighted F1 <b>{metrics['f1_weighted']:.3f} ± "
                  f"{metrics['f1_weighted_std']:.3f}</b> · macro F1 "
                  f"<b>{metrics['f1_macro']:.3f}</b> (mean ± standard deviation over the folds)")
    else:
        scored = f"{metrics['test_count']:,} test images"
        scores = (f"accuracy <b>{metrics['accuracy']:.3f}</b> · weighted F1 "
                  f"<b>{metrics['f1_weighted']:.3f}</b> · macro F1 "
                  f"<b>{metrics['f1_macro']:.3f}</b>")
    return (f"<div class='fse-scores'><b>{html.escape(model)}</b> recognising "
            f"<b>{html.escape(target)}</b> on {scored}: {scores}.{note}"
            f"{leak_note(metrics)}</div>")


def leak_note(metrics: dict[str, Any]) -> str:
    """How many test images had a near-duplicate among the images their model trained on."""
    leaked = metrics.get("test_with_duplicate_in_training")
    if leaked is None:  # unknown: the quality stage had not run, or the run predates the count
        return ""
    if not leaked:
        return (" <span class='fse-leaks'>No test image has a near-duplicate in training."
                "</span>")
    return (f" <span class='fse-leaks'><b>{leaked:,}</b> of the test images "
            f"{'has' if leaked == 1 else 'have'} a near-duplicate in training, which flatters "
            "these scores (<code>[train] near_duplicates = \"together\"</code> keeps copies "
            "on one side).</span>")


def per_class_html(metrics: dict[str, Any]) -> str:
    """Precision, recall, F1 and support of each class, worst F1 first."""
    rows = sorted(metrics["per_class"], key=lambda r: (r["f1"], str(r["class"])))
    body = "".join(
        f"<tr><td>{html.escape(str(r['class']))}</td><td>{r['precision']:.2f}</td>"
        f"<td>{r['recall']:.2f}</td><td>{r['f1']:.2f}</td><td>{int(r['support']):,}</td></tr>"
        for r in rows
    )
    return ("<table class='fse-counts'><tr><th>class</th><th>precision</th><th>recall</th>"
            f"<th>F1</th><th>support</th></tr>{body}</table>")
