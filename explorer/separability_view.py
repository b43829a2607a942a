"""The answer to the product's question: the layer strip (every layer of the shown model as a
small map with its score: explorer/layer_strip.py), and a heatmap of how well each layer
separates each attribute (kNN, linear probe, silhouette; shuffled-label baselines),
unconditionally or within the values of another attribute. Clicking a cell or a layer shows
that layer (coloured by that attribute) in the main map."""

from __future__ import annotations

import html

import holoviews as hv
import pandas as pd
import panel as pn

from explorer.cards import placeholder
from explorer.colours import label_ink
from explorer.data import ExplorerData
from explorer.layer_strip import LayerStrip, layer_name, strip_content
from explorer.plot_hooks import page_scrolls_over
from explorer.state import ExplorerState
from precompute.store import SpaceKey

METRICS = {"kNN accuracy": "knn", "linear probe accuracy": "probe", "silhouette": "silhouette"}
ALL_IMAGES = "all images"
SEPARABILITY_CSS = """
.fse-score-help { font-size: 13px; color: #333; }
.fse-score-help dt { font-weight: 600; margin-top: 4px; }
.fse-score-help dd { margin: 0 0 0 16px; color: #555; }
"""


def column_name(data: ExplorerData, space: SpaceKey) -> str:
    """A heatmap column's name: the layer strip's name of the layer (its run only when
    fine-tuned, so the rotated names stay short enough not to run into each other in a narrow
    window), after its backbone when the store has several."""
    name = layer_name(data, space)
    return f"{space.backbone} · {name}" if data.several_backbones else name


def separability_panel(data: ExplorerData, state: ExplorerState) -> pn.viewable.Viewable:
    """The layer strip; metric and condition selectors, the attribute × layer heatmap, the
    clicked cell's numbers."""
    def show_layer(space: str) -> None:
        state.space = space
        state.show_map()  # the main map, which now shows it

    strip = LayerStrip(show_layer,
                       content=pn.bind(strip_content, data, state.param.space,
                                       state.param.method, state.param.color_by,
                                       state.param.mask, state.param.isolated,
                                       state.param.hide_filtered, state.param.tab),
                       css_classes=["fse-strip"], sizing_mode="stretch_width")
    table = data.separability()
    if table is None:
        return pn.Column(strip, pn.pane.HTML(placeholder(
            "No separability table in this store: run `precompute analyse --store DIR`.")),
            sizing_mode="stretch_width")
    order = [str(space) for space in data.store.spaces()]
    # the heatmap's columns, named as the strip above names them; by key where two names meet
    names = {space: column_name(data, SpaceKey.parse(space)) for space in order}
    if len(set(names.values())) < len(names):
        names = {space: space for space in order}
    givens = [g for g in table["given"].unique().tolist() if g]
    metric = pn.widgets.Select(label="Measure", options=METRICS, value="knn",
                               css_classes=["fse-sep-metric"], width=220)
    condition = pn.widgets.Select(
        label="Among", options=[ALL_IMAGES] + [f"images of one {g}" for g in givens],
        css_classes=["fse-sep-condition"], width=220,
    )
    detail = pn.pane.HTML(placeholder("Click a cell to see that layer coloured by that "
                                      "attribute."), sizing_mode="stretch_width",
                          css_classes=["fse-sep-detail"])

    def cells(metric_name: str, among: str) -> pd.DataFrame:
        given = "" if among == ALL_IMAGES else among.removeprefix("images of one ")
        chosen = table[(table["metric"] == metric_name) & (table["given"] == given)].copy()
        chosen["space"] = pd.Categorical(chosen["space"], categories=order, ordered=True)
        chosen = chosen.sort_values("space")
        chosen["space"] = chosen["space"].astype(str)
        chosen["layer"] = chosen["space"].map(names)
        chosen["text"] = [f"{v:.2f}\n({b:.2f})" for v, b in
                          zip(chosen["value"], chosen["baseline"], strict=True)]
        low, high = chosen["value"].min(), chosen["value"].max()
        chosen["ink"] = label_ink((chosen["value"] - low) / max(high - low, 1e-9),
                                  dark_at_top=False)
        # HoloViews reshapes key columns; pandas' Arrow-backed strings cannot be reshaped.
        return chosen.astype({"space": object, "layer": object, "attribute": object,
                              "text": object, "ink": object})

    def heatmap(metric_name: str, among: str) -> hv.HeatMap:
        label = next(k for k, v in METRICS.items() if v == metric_name)
        return hv.HeatMap(cells(metric_name, among), kdims=["layer", "attribute"],
                          vdims=["value", "baseline", "low", "high", "n"]).opts(
            cmap="viridis", colorbar=True, tools=["hover", "tap"], xrotation=35,
            responsive=True, min_height=260, title=f"{label}: value (shuffled-label baseline)",
        )

    def labels(metric_name: str, among: str) -> hv.Labels:
        return hv.Labels(cells(metric_name, among), kdims=["layer", "attribute"],
                         vdims=["text", "ink"]).opts(text_color="ink", text_font_size="9pt")

    def clicked(x=None, y=None) -> None:
        if x is None or y is None:
            return
        row = cells(metric.value, condition.value)
        row = row[(row["layer"] == str(x)) & (row["attribute"] == str(y))]
        if row.empty:
            return
        cell = row.iloc[0]
        changes = {"space": cell["space"]}
        if cell["attribute"] in data.colour_attributes:
            changes["color_by"] = cell["attribute"]
        state.param.update(**changes)
        state.show_map()
        among = "" if condition.value == ALL_IMAGES else f" within each {cell['given']}"
        detail.object = (
            f"<div class='fse-sep-cell'><b>{html.escape(cell['attribute'])}</b>{among} at "
            f"<b>{html.escape(cell['layer'])}</b>: {cell['value']:.3f} "
            f"[{cell['low']:.3f}–{cell['high']:.3f}] against {cell['baseline']:.3f} "
            f"[{cell['baseline_low']:.3f}–{cell['baseline_high']:.3f}] with shuffled labels "
            f"({int(cell['n']):,} images, {int(cell['classes'])} classes). The map now shows "
            "this layer.</div>"
        )

    grid = hv.DynamicMap(pn.bind(heatmap, metric, condition))
    # The tap must come from the heatmap itself: over an overlay it would go to the labels.
    hv.streams.Tap(source=grid, x=None, y=None).add_subscriber(clicked)
    plot = (grid * hv.DynamicMap(pn.bind(labels, metric, condition))).opts(
        hv.opts.Overlay(hooks=[page_scrolls_over]))  # the overlay's hooks reach its figure
    return pn.Column(
        strip,
        pn.Row(metric, condition),
        pn.pane.HoloViews(plot, sizing_mode="stretch_width", min_height=280,
                          css_classes=["fse-separability"]),
        detail,
        pn.pane.HTML(placeholder(scope_note(data)), sizing_mode="stretch_width",
                     css_classes=["fse-sep-scope"]),
        pn.pane.HTML(score_definitions(data), sizing_mode="stretch_width",
                     css_classes=["fse-sep-help"]),
        sizing_mode="stretch_width",
    )


def score_definitions(data: ExplorerData) -> str:
    """What each score in the heatmap means, with the settings the analysis stage used."""
    recipes = data.store.meta(data.store.separability_path())["recipe"]
    settings = next(iter(recipes.values()), {}).get("analysis", {})
    k, folds = int(settings.get("knn", 10)), int(settings.get("folds", 5))
    shuffles = int(settings.get("shuffles", 20))
    terms = {
        "kNN accuracy": f"the share of images whose {k} nearest neighbours (cosine, in the "
                        "layer's full space, the image itself left out) vote for its own value",
        "linear probe accuracy": "the share of images a logistic regression on the layer's "
                                 f"standardised features labels right, each image predicted by "
                                 f"a model that did not see it ({folds}-fold cross-validation)",
        "silhouette": "how much nearer each image is to its own value's images than to the "
                      "nearest other value's (cosine distance; −1 to 1, 0: no separation)",
        "baseline (in brackets)": f"the same score with the labels shuffled ({shuffles} times): "
                                  "what chance gives; a layer separates an attribute as far as "
                                  "its score rises above this",
        "“among images of one A”": "B scored within each value of A only, so a B that merely "
                                   "comes along with A scores at its baseline",
    }
    rows = "".join(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>"
                   for term, text in terms.items())
    return f"<details class='fse-score-help'><summary>What the scores mean</summary><dl>{rows}" \
           "</dl></details>"


def scope_note(data: ExplorerData) -> str:
    """Which images the scores were computed on: every image for a pretrained space, the
    images its model never trained on for a fine-tuned one (as the analyse stage recorded),
    with a warning where training images were scored. Plain text: the caller escapes it."""
    meta = data.store.meta(data.store.separability_path())
    split = meta.get("split", "")
    if split:
        target, _, part = split.partition("/")
        return f"Scored on the {part} images of the {target} split."
    by_model = {SpaceKey.parse(space).model: scored
                for space, scored in meta.get("scored", {}).items()
                if not SpaceKey.parse(space).pretrained}
    notes = [f"{model}: {scored}." for model, scored in by_model.items()]
    if any("including the ones its model trained on" in scored for scored in by_model.values()):
        notes.append("Scores on training images are optimistic.")
    return " ".join(["Pretrained spaces are scored on every image.", *notes])
