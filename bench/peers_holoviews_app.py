"""The baseline of bench/peers.py: a big scatter served the way the HoloViz docs build one —
`hv.Points` + `datashade` (+ `dynspread`), a `Lasso` stream on it, the selected count in a
Markdown pane. No thumbnails, hover cards, filters or linked views: what our design adds.

    panel serve bench/peers_holoviews_app.py --args --points POINTS.parquet [--size 800x600]

POINTS.parquet holds columns x, y and category (bench/peers.py writes it from a store). The
map's pane carries the class `fse-map` and the count's the class `fse-selection-header` (the
count in bold), so bench/peers.py times both apps with the same in-page watches and gestures.
Lasso selection through `link_selections` needs spatialpandas or shapely, which the project's
environment does not have: the count is the even-odd rule in numpy, as a user without them
would write it.
"""

from __future__ import annotations

import argparse
import sys

import datashader as ds
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
from bokeh.palettes import Category20
from holoviews.operation.datashader import datashade, dynspread

hv.extension("bokeh")


@pn.cache
def load_points(path: str) -> pd.DataFrame:
    """x, y and category of every point, read once per server process."""
    table = pd.read_parquet(path, columns=["x", "y", "category"])
    table["category"] = table["category"].astype("category")
    return table


def inside_polygon(x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points lie inside `polygon` (even-odd rule), after a bounding-box cut."""
    (left, bottom), (right, top) = polygon.min(axis=0), polygon.max(axis=0)
    candidates = np.flatnonzero((x >= left) & (x <= right) & (y >= bottom) & (y <= top))
    px, py = x[candidates], y[candidates]
    inside = np.zeros(len(candidates), dtype=bool)
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        if y0 == y1:
            continue
        crosses = (y0 > py) != (y1 > py)
        inside ^= crosses & (px < x0 + (py - y0) * (x1 - x0) / (y1 - y0))
    mask = np.zeros(len(x), dtype=bool)
    mask[candidates[inside]] = True
    return mask


def selected_text(table: pd.DataFrame, geometry: np.ndarray | None) -> str:
    """The count pane's text for a lasso's outline (none drawn yet: 0)."""
    if geometry is None or len(geometry) < 3:
        return "<b>0</b> points selected"
    mask = inside_polygon(table["x"].to_numpy(), table["y"].to_numpy(), np.asarray(geometry))
    return f"<b>{int(mask.sum()):,}</b> points selected"


def scatter_app(table: pd.DataFrame, width: int, height: int) -> pn.viewable.Viewable:
    """The datashaded map with a lasso, and the selected count above it."""
    categories = list(table["category"].cat.categories)
    palette = Category20[20] * (len(categories) // 20 + 1)
    points = hv.Points(table, kdims=["x", "y"], vdims=["category"])
    shaded = dynspread(datashade(points, aggregator=ds.count_cat("category"),
                                 color_key=dict(zip(categories, palette, strict=False))))
    shaded = shaded.opts(frame_width=width, frame_height=height, xaxis=None, yaxis=None,
                         bgcolor="#ffffff", tools=["lasso_select"],
                         active_tools=["pan", "wheel_zoom"])
    lasso = hv.streams.Lasso(source=shaded)
    count = pn.pane.Markdown(pn.bind(selected_text, table, lasso.param.geometry),
                             css_classes=["fse-selection-header"])
    return pn.Column(count, pn.pane.HoloViews(shaded, css_classes=["fse-map"]))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="peers_holoviews_app")
    parser.add_argument("--points", required=True, help="parquet with x, y, category")
    parser.add_argument("--size", default="800x600",
                        help="the map's plot frame, width x height pixels")
    return parser.parse_args(argv)


args = parse_args(sys.argv[1:])
map_width, map_height = (int(v) for v in args.size.split("x"))
scatter_app(load_points(args.points), map_width, map_height).servable()
