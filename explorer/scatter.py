"""The map: a datashaded (server-side rasterized) scatter of one projection, coloured by an
attribute, re-rendered on every zoom, pan or resize so it stays fast at millions of points."""

from __future__ import annotations

import datashader as ds
import holoviews as hv
from holoviews.operation.datashader import datashade, dynspread

from explorer.colours import NUMERIC_CMAP, TOP_CATEGORIES, category_colours
from explorer.data import ExplorerData
from explorer.state import ExplorerState
from precompute.store import NUMERIC, SpaceKey

MAP_EXTENT = 1.05  # every projection is scaled into [-1, 1]; the view shows a small margin
DEFAULT_SIZE = (800, 600)


def shade_points(
    data: ExplorerData,
    space: str,
    method: str,
    color_by: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    width: int | None = None,
    height: int | None = None,
) -> hv.RGB:
    """One rendered image of the map for a viewport: aggregate, colour, spread."""
    frame = data.frame(SpaceKey.parse(space), method, color_by, TOP_CATEGORIES)
    points = hv.Points(frame, kdims=["x", "y"], vdims=["colour"])
    if data.kinds[color_by] == NUMERIC:
        colouring = {"aggregator": ds.mean("colour"), "cmap": NUMERIC_CMAP}
    else:
        colours = category_colours(list(frame["colour"].cat.categories))
        colouring = {"aggregator": ds.count_cat("colour"), "color_key": colours}
    extent = (-MAP_EXTENT, MAP_EXTENT)
    shaded = datashade(
        points,
        dynamic=False,
        x_range=tuple(x_range or extent),
        y_range=tuple(y_range or extent),
        width=int(width or DEFAULT_SIZE[0]),
        height=int(height or DEFAULT_SIZE[1]),
        min_alpha=120,
        **colouring,
    )
    return dynspread(shaded, dynamic=False, threshold=0.6, max_px=5)


def map_view(data: ExplorerData, state: ExplorerState) -> hv.DynamicMap:
    """The map of the session's feature space, method and colour attribute, at the current
    viewport; one render per change of any of them."""

    def render(space, method, color_by, x_range=None, y_range=None, width=None, height=None,
               scale=1.0):
        if width and height:  # PlotSize's scale renders at the screen's pixel density
            width, height = int(width * scale), int(height * scale)
        return shade_points(data, space, method, color_by, x_range, y_range, width, height)

    streams = [
        hv.streams.Params(state, ["space", "method", "color_by"]),
        hv.streams.RangeXY(),
        hv.streams.PlotSize(),
    ]
    extent = (-MAP_EXTENT, MAP_EXTENT)
    return hv.DynamicMap(render, streams=streams).opts(
        responsive=True,
        min_height=500,
        xaxis=None,
        yaxis=None,
        xlim=extent,
        ylim=extent,
        bgcolor="#ffffff",
        show_legend=False,
        default_tools=["pan", "wheel_zoom", "box_zoom", "reset"],
        active_tools=["wheel_zoom"],
        toolbar="above",
    )
