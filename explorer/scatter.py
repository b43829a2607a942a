"""The map: a server-side rasterized scatter of one projection (datashader: canvas → aggregate →
shade → spread), coloured by an attribute, with the selection on top and points outside the
filter dimmed or hidden. When the viewport holds few enough points they are drawn as real glyphs,
and when it holds fewer still, as their images (explorer/thumbnail_map.py).
The image aggregates a table held in memory, or one built by Dask workers when the store was
opened with a scheduler (explorer/dask_points.py).
"""

from __future__ import annotations

import dataclasses

import datashader as ds
import datashader.transfer_functions as tf
import holoviews as hv
import numpy as np
import pandas as pd
import xarray as xr

from explorer.colours import (
    FADED_ALPHA,
    FADED_GREY,
    GREY_FILTERED,
    NUMERIC_CMAP,
    TOP_CATEGORIES,
    category_colours,
    isolated_codes,
    numeric_colours,
    numeric_span,
)
from explorer.data import CLUSTER, ExplorerData
from explorer.geometry import sorted_slice
from explorer.point_table import OUTSIDE, Colouring, filtered
from explorer.thumbnail_map import THUMBNAIL_LIMIT, thumbnail_image
from precompute.store import NUMERIC, SpaceKey

MAP_EXTENT = 1.05  # every projection is scaled into [-1, 1]; the view shows a small margin
EXTENT = (-MAP_EXTENT, MAP_EXTENT)  # the whole map's range on either axis
DEFAULT_SIZE = (800, 600)
GLYPH_LIMIT = 3_000  # at most this many points in view: draw real glyphs instead of an image
GLYPH_SIZE = 7  # px across a glyph in the whole map's view; it grows as the view zooms in
EMPTY_RGB_BOUNDS = (-MAP_EXTENT, -MAP_EXTENT, MAP_EXTENT, MAP_EXTENT)


@dataclasses.dataclass(frozen=True)
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
    isolated: tuple[str, ...] = ()  # values of `color_by` in colour, the rest dimmed
    glyph_limit: int = GLYPH_LIMIT
    spread: int | None = None  # pixels each point grows by; None: as dense as the image allows


def render_map(data: ExplorerData, request: MapRequest) -> hv.Overlay:
    """The map for one viewport: an image layer and a glyph layer, one of them empty. The whole
    map, unselected and unfiltered, is what every session opens on and returns to: its image is
    rendered once per process for each size."""
    if is_whole_map(request):
        key = ("whole map", dataclasses.replace(request, selection=None))
        rgba = data.derived(key, lambda: map_image(data, request))
    else:
        rgba = map_image(data, request)
    if rgba is None:
        return _glyphs(data, request)
    bounds = (request.x_range[0], request.y_range[0], request.x_range[1], request.y_range[1])
    return hv.Overlay([hv.RGB(rgba, bounds=bounds, vdims=list("RGBA")), empty_glyphs()])


def is_whole_map(request: MapRequest) -> bool:
    """Whether `request` shows every point at the full extent, with no selection, filter or
    isolated value."""
    return ((request.selection is None or not len(request.selection)) and request.mask is None
            and not request.isolated
            and request.x_range == EXTENT and request.y_range == EXTENT)


def highlighted_rows(data: ExplorerData, request: MapRequest) -> np.ndarray | None:
    """The rows drawn in colour over the others' grey: the selection's, those of the isolated
    values of a categorical colouring, or the selected rows among the isolated values when
    there are both. None when every point is drawn in colour."""
    selection = request.selection if request.selection is not None and len(
        request.selection) else None
    colouring = _colouring(data, request)
    if not request.isolated or colouring.numeric:
        return selection
    space = SpaceKey.parse(request.space)
    categories = data.colour_values(request.color_by, TOP_CATEGORIES, space).cat.categories
    rows = np.flatnonzero(np.isin(colouring.codes, isolated_codes(categories, request.isolated)))
    return rows if selection is None else np.intersect1d(rows, selection, assume_unique=True)


def map_image(data: ExplorerData, request: MapRequest) -> np.ndarray | None:
    """The viewport's image, RGBA rows from the top (read-only), or None when it holds few
    enough points to draw as glyphs."""
    highlighted = highlighted_rows(data, request)
    if highlighted is None:
        both = map_aggregate(data, request)
        if int(both["count"].sum()) <= request.glyph_limit:
            return None
        image = _coloured(data, request, both)
    else:
        drawn, ground = _ground(data, request)
        if drawn <= request.glyph_limit:
            return None
        image = tf.stack(ground, _highlight(data, request, highlighted))
    if request.spread is None:
        image = tf.dynspread(image, threshold=0.6, max_px=5)
    elif request.spread:
        image = tf.spread(image, px=request.spread, shape="circle")
    # datashader's rows run upwards in y; an RGB element's rows run downwards.
    rgba = image.data.view(np.uint8).reshape(request.height, request.width, 4)[::-1]
    rgba.flags.writeable = False  # the whole map's image is shared by every session
    return rgba


def _ground(data: ExplorerData, request: MapRequest) -> tuple[int, tf.Image]:
    """How many points the viewport draws, and all of them in faint grey: the ground a
    selection or isolation is drawn on. At the full extent without a filter it is the same
    for every selection (and for both maps of a compare view that change their selection
    together), so it is kept once per map and size."""

    def make() -> tuple[int, tf.Image]:
        count = map_aggregate(data, request)["count"]
        return int(count.sum()), tf.shade(count, cmap=[FADED_GREY],
                                          min_alpha=FADED_ALPHA // 2, alpha=FADED_ALPHA)

    if request.mask is not None or (request.x_range, request.y_range) != (EXTENT, EXTENT):
        return make()
    key = (request.space, request.method, request.width, request.height)  # any colouring
    return data.derived(("whole ground", *key), make)


def _coloured(data: ExplorerData, request: MapRequest, both: xr.Dataset) -> tf.Image:
    """Every point in its colour (a numeric colouring over the filter's outside in grey)."""
    if not _colouring(data, request).numeric:
        return _mix(both)
    values = data.colour_values(request.color_by, TOP_CATEGORIES,
                                SpaceKey.parse(request.space))
    image = _shade_numeric(both["mean"], values)
    if OUTSIDE in both:  # the points outside the filter, drawn grey beneath
        image = tf.stack(tf.shade(both[OUTSIDE], cmap=[GREY_FILTERED], min_alpha=60), image)
    return image


def _highlight(data: ExplorerData, request: MapRequest, rows: np.ndarray) -> tf.Image:
    """The highlighted `rows` (see `highlighted_rows`) in their colours, inside the filter."""
    space = SpaceKey.parse(request.space)
    xy = data.coords(space, request.method)
    colouring = _colouring(data, request)
    if request.hide_filtered and request.mask is not None:
        rows = rows[request.mask[rows]]
    mask = None if request.mask is None else request.mask[rows]
    chosen = filtered(colouring.take(rows).columns(xy[rows, 0], xy[rows, 1]), mask, False)
    canvas = _canvas(request)
    if not colouring.numeric:
        return _mix(canvas.points(chosen, "x", "y", MIXED_COLOUR))
    values = data.colour_values(request.color_by, TOP_CATEGORIES, space)
    return _shade_numeric(canvas.points(chosen, "x", "y", ds.mean("colour")), values)


MIXED_COLOUR = ds.summary(count=ds.count(), r=ds.sum("r"), g=ds.sum("g"), b=ds.sum("b"))
NUMERIC_MEAN = ds.summary(mean=ds.mean("colour"), count=ds.count())
NUMERIC_MEAN_GREYED = ds.summary(mean=ds.mean("colour"), count=ds.count(),
                                 outside=ds.count(OUTSIDE))
MIN_ALPHA = 120


def map_aggregate(data: ExplorerData, request: MapRequest) -> xr.Dataset:
    """Per pixel of the viewport, in one pass over the points drawn: their count and colour
    sums (`MIXED_COLOUR`) or mean value (numeric), and with a filter on a numeric colouring the
    count of the points outside it. From the table held in memory, or through Dask when `data`
    was opened with a scheduler."""
    colouring = _colouring(data, request)
    canvas, summary = _canvas(request), _reduction(colouring, request)
    if data.dask is None:
        return canvas.points(_viewport_points(data, request, colouring), "x", "y", summary)
    from explorer import dask_points  # Dask mode only: the app starts without `distributed`

    return dask_points.map_aggregate(data, request, colouring, canvas, summary)


def _reduction(colouring: Colouring, request: MapRequest) -> ds.summary:
    """What each pixel sums up: colour channels, or a numeric mean with, when the points
    outside the filter are drawn grey beneath, their count (`point_table.filtered` marks them)."""
    if not colouring.numeric:
        return MIXED_COLOUR
    greyed = request.mask is not None and not request.hide_filtered
    return NUMERIC_MEAN_GREYED if greyed else NUMERIC_MEAN


def _canvas(request: MapRequest) -> ds.Canvas:
    return ds.Canvas(plot_width=request.width, plot_height=request.height,
                     x_range=request.x_range, y_range=request.y_range)


def _colouring(data: ExplorerData, request: MapRequest) -> Colouring:
    """The colouring of every point by the request's attribute, shared by the sessions."""
    space = SpaceKey.parse(request.space)
    values = data.colour_values(request.color_by, TOP_CATEGORIES, space)
    numeric = data.kinds[request.color_by] == NUMERIC
    key = ("colouring", request.color_by, space if request.color_by == CLUSTER else None)
    return data.derived(key, lambda: Colouring.of(values, numeric))


def _viewport_points(data: ExplorerData, request: MapRequest, colouring: Colouring
                     ) -> pd.DataFrame:
    """The points in the viewport's x range, filtered, from the whole table held in memory:
    its columns are in the x order the projection's point index keeps for boxes and lassos,
    the colours put in that order once per colouring (numpy arrays shared by the sessions), so
    a render aggregates a new table over one slice of them. (A slice of a shared pandas table
    would leave a reference on it that pandas keeps until it next clears them.)"""
    order, x, y = data.points(SpaceKey.parse(request.space), request.method).by_x
    key = ("colour columns", request.space, request.method, request.color_by)
    columns = data.derived(key, lambda: colouring.take(order).arrays(x, y))
    rows = sorted_slice(columns["x"], *request.x_range)
    points = pd.DataFrame({name: values[rows] for name, values in columns.items()}, copy=False)
    mask = None if request.mask is None else request.mask[order[rows]]
    return filtered(points, mask, request.hide_filtered)


def _mix(aggregate) -> tf.Image:
    """Each pixel's mean colour; opacity rises with the log of its point count. Computed on the
    filled pixels only: a zoomed view or a sparse map leaves most of the image empty."""
    count = aggregate["count"].to_numpy()
    packed = np.zeros(count.shape, dtype=np.uint32)
    filled = np.flatnonzero(count)
    if len(filled):
        points = count.ravel()[filled].astype(np.float32)
        r, g, b = (np.clip(aggregate[c].to_numpy().ravel()[filled] / points, 0, 255)
                   .astype(np.uint32) for c in ("r", "g", "b"))
        density = np.log1p(points)
        alpha = (MIN_ALPHA + (255 - MIN_ALPHA) * density / max(density.max(), 1e-6))
        packed.ravel()[filled] = r | g << 8 | b << 16 | alpha.astype(np.uint32) << 24
    return tf.Image(packed, coords=aggregate["count"].coords, dims=aggregate["count"].dims)


def _shade_numeric(aggregate, values: pd.Series):
    """Linear, so the colours match the legend's colour bar and the glyphs."""
    return tf.shade(aggregate, cmap=NUMERIC_CMAP, how="linear", span=numeric_span(values),
                    min_alpha=120)


def _glyphs(data: ExplorerData, request: MapRequest) -> hv.Overlay:
    """Few points in view: draw each as a glyph in its colour, growing as the view zooms in;
    zoomed in on at most THUMBNAIL_LIMIT, draw their images instead (the whole map stays an
    overview of colours)."""
    space = SpaceKey.parse(request.space)
    xy = data.coords(space, request.method)
    values = data.colour_values(request.color_by, TOP_CATEGORIES, space)
    numeric = _colouring(data, request).numeric
    rows = data.points(space, request.method).in_box(
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
    x, y = xy[rows, 0], xy[rows, 1]
    highlighted = highlighted_rows(data, request)
    zoomed = (request.x_range, request.y_range) != (EXTENT, EXTENT)
    if data.has_thumbnails and zoomed and len(rows) <= THUMBNAIL_LIMIT:
        rgba = thumbnail_image(data, rows, x, y, colours, inside, highlighted,
                               request.x_range, request.y_range, request.width, request.height)
        bounds = (request.x_range[0], request.y_range[0], request.x_range[1],
                  request.y_range[1])
        return hv.Overlay([hv.RGB(rgba, bounds=bounds, vdims=list("RGBA")), empty_glyphs()])
    alpha = np.where(inside, 0.9, 0.35)
    if highlighted is not None:  # the others grey, as in the image
        chosen = np.isin(rows, highlighted)
        colours = np.where(chosen, colours, FADED_GREY)
        alpha = np.where(chosen, 1.0, FADED_ALPHA / 255)
    zoom = (EXTENT[1] - EXTENT[0]) / (request.x_range[1] - request.x_range[0])
    size = float(np.clip(GLYPH_SIZE * zoom ** 0.4, GLYPH_SIZE, 2.5 * GLYPH_SIZE))
    glyphs = glyph_layer(x, y, colours, alpha, size)
    empty = hv.RGB(np.zeros((1, 1, 4), dtype=np.uint8), bounds=EMPTY_RGB_BOUNDS)
    return hv.Overlay([empty, glyphs])


def glyph_layer(x, y, colours, alpha, size: float = GLYPH_SIZE) -> hv.Points:
    """Points drawn one by one (styled as `Points.Glyphs` by the map), `size` px across."""
    table = pd.DataFrame({"x": x, "y": y, "colour": colours, "alpha": alpha,
                          "size": np.full(len(x), size)})
    return hv.Points(table, kdims=["x", "y"], vdims=["colour", "alpha", "size"],
                     group="Glyphs")


def empty_glyphs() -> hv.Points:
    """A glyph layer with no points (keeps the overlay's structure in image mode)."""
    return glyph_layer([], [], [], [])
