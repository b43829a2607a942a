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
    GREY_OTHER,
    NUMERIC_CMAP,
    TOP_CATEGORIES,
    category_colours,
    numeric_colours,
    numeric_span,
)
from explorer.data import ExplorerData
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
    space = SpaceKey.parse(request.space)
    frame = data.frame(space, request.method)
    numeric = data.kinds[request.color_by] == NUMERIC
    values = data.colour_values(request.color_by, TOP_CATEGORIES, space)
    order = data.derived(("x order", request.space, request.method), lambda: XOrder.of(frame))
    key = ("colour columns", request.space, request.method, request.color_by)
    points = data.derived(key, lambda: _colour_columns(frame, values, order.rows, numeric))
    mask = None if request.mask is None else request.mask[order.rows]
    canvas = ds.Canvas(
        plot_width=request.width, plot_height=request.height,
        x_range=request.x_range, y_range=request.y_range,
    )
    if numeric:
        if mask is not None:  # missing outside the filter: those are drawn grey apart
            points = points.assign(colour=np.where(mask, points["colour"], np.float32(np.nan)))
        # one pass: the mean colour and how many points each pixel holds
        both = canvas.points(_x_slice(points, request.x_range), "x", "y",
                             ds.summary(mean=ds.mean("colour"), count=ds.count()))
    else:
        if mask is not None:
            points = points.copy()
            points.loc[~mask, ["r", "g", "b"]] = _rgb(GREY_FILTERED)
        drawn = points[mask] if request.hide_filtered and mask is not None else points
        both = canvas.points(_x_slice(drawn, request.x_range), "x", "y", MIXED_COLOUR)
    if int(both["count"].sum()) <= request.glyph_limit:
        return _glyphs(data, request, frame, values, numeric)
    if numeric:
        image = _shade_numeric(both["mean"], values)
        if mask is not None and not request.hide_filtered:
            outside = _x_slice(points[~mask], request.x_range)
            grey = tf.shade(canvas.points(outside, "x", "y", ds.count()),
                            cmap=[GREY_FILTERED], min_alpha=60)
            image = tf.stack(grey, image)
    else:
        image = _mix(both)
    if request.selection is not None and len(request.selection):
        rows = request.selection
        if request.hide_filtered and request.mask is not None:
            rows = rows[request.mask[rows]]
        chosen = points.iloc[order.positions[rows]]
        if numeric:
            selected = _shade_numeric(canvas.points(chosen, "x", "y", ds.mean("colour")), values)
        else:
            selected = _mix(canvas.points(chosen, "x", "y", MIXED_COLOUR))
        image = tf.stack(
            tf.shade(both["count"], cmap=["#bbbbbb"], min_alpha=FADED_ALPHA // 2,
                     alpha=FADED_ALPHA),
            selected,
        )
    image = tf.dynspread(image, threshold=0.6, max_px=5)
    # datashader's rows run upwards in y; an RGB element's rows run downwards.
    rgba = image.data.view(np.uint8).reshape(request.height, request.width, 4)[::-1]
    bounds = (request.x_range[0], request.y_range[0], request.x_range[1], request.y_range[1])
    return hv.Overlay([hv.RGB(rgba, bounds=bounds, vdims=list("RGBA")), empty_glyphs()])


@dataclass(frozen=True)
class XOrder:
    """The points of one projection sorted by x, so the points of a viewport are one slice of
    the sorted columns and a zoomed render aggregates only those."""

    rows: np.ndarray  # sorted position i holds image rows[i]
    positions: np.ndarray  # image j is at sorted position positions[j]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> XOrder:
        rows = np.argsort(frame["x"].to_numpy(), kind="stable")
        positions = np.empty_like(rows)
        positions[rows] = np.arange(len(rows))
        return cls(rows, positions)


def _x_slice(points: pd.DataFrame, x_range: tuple[float, float]) -> pd.DataFrame:
    """The points (sorted by x) whose x lies in `x_range`: all the canvas would count."""
    x = points["x"].to_numpy()
    low = int(np.searchsorted(x, x_range[0], side="left"))
    high = int(np.searchsorted(x, x_range[1], side="right"))
    return points.iloc[low:high]


def _colour_columns(frame: pd.DataFrame, values: pd.Series, rows: np.ndarray,
                    numeric: bool) -> pd.DataFrame:
    """x, y and the colour of each point, in the order `rows`: for a numeric attribute its value
    as float32 (`colour`), for a categorical one the red, green and blue of its category.

    Summing the channels per pixel and dividing by the count mixes the colours of a pixel's
    points in proportion, as datashader's categorical shading does, from one pass of four
    sums instead of a count per category and pixel."""
    columns = {"x": frame["x"].to_numpy()[rows], "y": frame["y"].to_numpy()[rows]}
    if numeric:
        columns["colour"] = values.to_numpy(dtype="float32", na_value=np.nan)[rows]
    else:
        colours = category_colours(list(values.cat.categories))
        palette = np.array([_rgb(colours[c]) for c in values.cat.categories]
                           + [_rgb(GREY_OTHER)], dtype=np.float32)
        rgb = palette[values.cat.codes.to_numpy()[rows]]  # -1 (no category) takes the last row
        columns.update(r=rgb[:, 0], g=rgb[:, 1], b=rgb[:, 2])
    return pd.DataFrame(columns, copy=False)


MIXED_COLOUR = ds.summary(count=ds.count(), r=ds.sum("r"), g=ds.sum("g"), b=ds.sum("b"))
MIN_ALPHA = 120


def _mix(aggregate) -> tf.Image:
    """Each pixel's mean colour; opacity rises with the log of its point count."""
    count = aggregate["count"].to_numpy()
    filled = count > 0
    safe = np.maximum(count, 1).astype(np.float32)
    channels = [np.clip(np.nan_to_num(aggregate[c].to_numpy()) / safe, 0, 255).astype(np.uint32)
                for c in ("r", "g", "b")]
    density = np.log1p(count.astype(np.float32))
    top = density.max() if filled.any() else 1.0
    alpha = (MIN_ALPHA + (255 - MIN_ALPHA) * density / max(top, 1e-6)).astype(np.uint32)
    packed = channels[0] | channels[1] << 8 | channels[2] << 16 | alpha << 24
    packed[~filled] = 0
    return tf.Image(packed, coords=aggregate["count"].coords, dims=aggregate["count"].dims)


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))


def _shade_numeric(aggregate, values: pd.Series):
    """Linear, so the colours match the legend's colour bar and the glyphs."""
    return tf.shade(aggregate, cmap=NUMERIC_CMAP, how="linear", span=numeric_span(values),
                    min_alpha=120)


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
