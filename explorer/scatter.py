"""The map: a server-side rasterized scatter of one projection (datashader: canvas → aggregate →
shade → spread), coloured by an attribute, with the selection on top and points outside the
filter dimmed or hidden. When the viewport holds few enough points they are drawn as real glyphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import datashader as ds
import datashader.transfer_functions as tf
import holoviews as hv
import numpy as np
import pandas as pd

from explorer.colours import (
    FADED_ALPHA,
    GREY_FILTERED,
    NUMERIC_CMAP,
    TOP_CATEGORIES,
    category_colours,
    numeric_colours,
    numeric_span,
)
from explorer.data import FILTERED, ExplorerData
from precompute.store import NUMERIC, SpaceKey

MAP_EXTENT = 1.05  # every projection is scaled into [-1, 1]; the view shows a small margin
DEFAULT_SIZE = (800, 600)
GLYPH_LIMIT = 3_000  # at most this many points in view: draw real glyphs instead of an image
EMPTY_RGB_BOUNDS = (-MAP_EXTENT, -MAP_EXTENT, MAP_EXTENT, MAP_EXTENT)


@dataclass(frozen=True)
class MapRequest:
    """Everything one render of the map depends on."""

    space: str
    method: str
    color_by: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width: int
    height: int
    selection: np.ndarray | None = None
    mask: np.ndarray | None = None  # rows inside the filter
    hide_filtered: bool = False
    glyph_limit: int = GLYPH_LIMIT


def render_map(data: ExplorerData, request: MapRequest) -> hv.Overlay:
    """The map for one viewport: an image layer and a glyph layer, one of them empty."""
    frame = data.frame(SpaceKey.parse(request.space), request.method)
    numeric = data.kinds[request.color_by] == NUMERIC
    values = data.colour_values(request.color_by, TOP_CATEGORIES, SpaceKey.parse(request.space))
    canvas = ds.Canvas(
        plot_width=request.width, plot_height=request.height,
        x_range=request.x_range, y_range=request.y_range,
    )
    colour = _colour_column(values, request.mask, numeric)
    points = frame.assign(colour=colour)
    if numeric:  # one pass: the mean colour and how many points each pixel holds
        both = canvas.points(points, "x", "y", ds.summary(mean=ds.mean("colour"),
                                                          count=ds.count()))
        aggregate, visible = both["mean"], int(both["count"].sum())
    else:
        aggregate = canvas.points(points, "x", "y", ds.count_cat("colour"))
        visible = int(aggregate.sum())
    if visible <= request.glyph_limit:
        return _glyphs(data, request, frame, values, numeric)
    image = _shade(aggregate, values, numeric, request.hide_filtered)
    if numeric and request.mask is not None and not request.hide_filtered:
        outside = frame[~request.mask]
        grey = tf.shade(canvas.points(outside, "x", "y", ds.count()), cmap=[GREY_FILTERED],
                        min_alpha=60)
        image = tf.stack(grey, image)
    if request.selection is not None and len(request.selection):
        chosen = points.iloc[request.selection]
        if numeric:
            selected = canvas.points(chosen, "x", "y", ds.mean("colour"))
        else:
            selected = canvas.points(chosen, "x", "y", ds.count_cat("colour"))
        image = tf.stack(
            tf.shade(_counts(aggregate, numeric), cmap=["#bbbbbb"], min_alpha=FADED_ALPHA // 2,
                     alpha=FADED_ALPHA),
            _shade(selected, values, numeric, hide_filtered=True),
        )
    image = tf.dynspread(image, threshold=0.6, max_px=5)
    # datashader's rows run upwards in y; an RGB element's rows run downwards.
    rgba = image.data.view(np.uint8).reshape(request.height, request.width, 4)[::-1]
    bounds = (request.x_range[0], request.y_range[0], request.x_range[1], request.y_range[1])
    return hv.Overlay([hv.RGB(rgba, bounds=bounds, vdims=list("RGBA")), empty_glyphs()])


def _colour_column(values: pd.Series, mask: np.ndarray | None, numeric: bool) -> pd.Series:
    if mask is None:
        return values.array
    if numeric:
        return np.where(mask, values.to_numpy(), np.nan).astype("float32")
    categories = [*values.cat.categories, FILTERED]
    codes = np.where(mask, values.cat.codes.to_numpy(), len(categories) - 1)
    return pd.Categorical.from_codes(codes, categories=categories)


def _shade(aggregate, values: pd.Series, numeric: bool, hide_filtered: bool):
    if numeric:  # linear, so the colours match the legend's colour bar and the glyphs
        return tf.shade(aggregate, cmap=NUMERIC_CMAP, how="linear", span=numeric_span(values),
                        min_alpha=120)
    present = [c for c in aggregate.coords["colour"].values.tolist()
               if not (hide_filtered and c == FILTERED)]
    aggregate = aggregate.sel(colour=present)
    colours = category_colours(list(values.cat.categories))
    colours[FILTERED] = GREY_FILTERED
    return tf.shade(aggregate, color_key=[colours[c] for c in present], min_alpha=120)


def _counts(aggregate, numeric: bool):
    """Points per pixel, whatever the aggregate."""
    if numeric:
        return aggregate.notnull().astype("uint32")
    return aggregate.sum(dim="colour")


def _glyphs(data: ExplorerData, request: MapRequest, frame: pd.DataFrame, values: pd.Series,
            numeric: bool) -> hv.Overlay:
    """Few points in view: draw each as a glyph, in its colour."""
    rows = data.points(SpaceKey.parse(request.space), request.method).in_box(
        request.x_range[0], request.y_range[0], request.x_range[1], request.y_range[1]
    )
    if request.mask is not None:
        if request.hide_filtered:
            rows = rows[request.mask[rows]]
        inside = request.mask[rows]
    else:
        inside = np.ones(len(rows), dtype=bool)
    if numeric:
        colours = numeric_colours(values.to_numpy()[rows], numeric_span(values))
    else:
        key = category_colours(list(values.cat.categories))
        colours = np.array([key[c] for c in values.iloc[rows]], dtype=object)
    colours = np.where(inside, colours, GREY_FILTERED)
    alpha = np.where(inside, 0.9, 0.35)
    if request.selection is not None and len(request.selection):
        chosen = np.isin(rows, request.selection)
        alpha = np.where(chosen, 1.0, 0.15)
    glyphs = glyph_layer(frame["x"].to_numpy()[rows], frame["y"].to_numpy()[rows], colours,
                         alpha)
    empty = hv.RGB(np.zeros((1, 1, 4), dtype=np.uint8), bounds=EMPTY_RGB_BOUNDS)
    return hv.Overlay([empty, glyphs])


def glyph_layer(x, y, colours, alpha) -> hv.Points:
    """Points drawn one by one (styled as `Points.Glyphs` by the map)."""
    table = pd.DataFrame({"x": x, "y": y, "colour": colours, "alpha": alpha})
    return hv.Points(table, kdims=["x", "y"], vdims=["colour", "alpha"], group="Glyphs")


def empty_glyphs() -> hv.Points:
    """A glyph layer with no points (keeps the overlay's structure in image mode)."""
    return glyph_layer([], [], [], [])
