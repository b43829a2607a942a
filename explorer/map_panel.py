"""The interactive map: the rendered scatter plus markers, wired to the session state through
HoloViews streams (viewport, size) and Bokeh's own events (pointer, tap, lasso, box) — no
hand-written JavaScript."""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.events import DoubleTap, MouseMove, PanEnd, PanStart, SelectionGeometry, Tap
from bokeh.models import ColumnDataSource, LassoSelectTool, Range1d

from explorer.clusters_view import cluster_label_table
from explorer.data import CLUSTER, ExplorerData
from explorer.density import contour_lines, no_contours
from explorer.plot_hooks import page_scrolls_over
from explorer.scatter import DEFAULT_SIZE, EXTENT, MapRequest, render_map
from explorer.state import ExplorerState
from explorer.throttle import Throttle
from precompute.store import SpaceKey

HOVER_RADIUS_PX = 12  # the cursor picks the nearest point within this many screen pixels
HOVER_INTERVAL_MS = 100  # a moving pointer's point is looked up at most this often
# Every marker is black, which no category's colour is (the palette's darkest grey is #505646):
# a wide ring on the clicked point, narrower ones on its neighbours, a star on an upload, a
# dotted ring under the cursor.
MARKER_INK = "#000000"
MARKER_SIZES = {"focus": 18, "neighbour": 12, "query": 16}
RING = {"line_width": 2.5, "fill_alpha": 0, "line_color": MARKER_INK}  # how every ring is drawn
HOVER_RING = {**RING, "size": 14, "line_dash": "dotted"}
# Beside the side panel (280-420 px) the map takes the rest of the width from a basis of 640 px
# (half of a 1280-px window; never under 450), and the window's height less the header and the
# tab bar (so the tabs stay in view at 1280x720). A window too narrow for both (below NARROW)
# puts the panel under the map, and the map leaves room for it on screen, so the card of a
# hovered point stays in view.
NARROW = "(max-width: 1250px)"
MAP_CSS = f"""
:host {{ flex: 1 1 640px; min-width: 450px; height: max(420px, calc(100vh - 150px)); }}
@media {NARROW} {{ :host {{ height: max(360px, calc(100vh - 440px)); }} }}
"""


@dataclasses.dataclass(frozen=True)
class MapSide:
    """Which of the state's parameters a map shows. The first map shows the session's own
    space, method and neighbours and keeps its viewport in the state (and so in the URL); the
    compare view's second map has a space, method and neighbours of its own. Both share the
    colouring, filter, isolation and selection."""

    space: str = "space"
    method: str = "method"
    neighbours: str = "neighbours"
    css_classes: tuple[str, ...] = ("fse-map",)
    keeps_viewport: bool = True


FIRST_MAP = MapSide()
SECOND_MAP = MapSide("space_b", "method_b", "neighbours_b", ("fse-map", "fse-map-b"), False)
# Bokeh sends a wheel zoom's new ranges, which ask the server for the sharp map, only once the
# wheel has rested this long (its `lod_timeout`; 500 ms by default, the stretched image shown
# meanwhile): at 1M points 542 of the 735 ms from a wheel event to the new image.
ZOOM_SETTLE_MS = 150
HOVER_RING_NAME = "fse-hover-ring"  # the Bokeh name of each map's hover ring (browser tests)


class MapPanel(pn.viewable.Viewer):
    """One map of a session; hovering sets `hovered` (a ring marks it), clicking sets the
    state's focus, lasso and box set the state's selection."""

    hovered = param.Integer(default=None, allow_None=True, doc="row under the cursor")

    def __init__(self, data: ExplorerData, state: ExplorerState, side: MapSide = FIRST_MAP,
                 **params):
        super().__init__(**params)
        self.data, self.state, self.side = data, state, side
        names = {side.space: "space", side.method: "method"}
        self._pointer: tuple[float | None, float | None] = (None, None)
        self._dragging = False  # a pan, lasso or box is being drawn: no hover look-ups
        self._look_up_hover = Throttle(self._apply_hover, HOVER_INTERVAL_MS)
        self._rings: dict[str, ColumnDataSource] = {}  # the hover ring's source, by figure id
        self._ranges: dict[str, tuple[Range1d, Range1d]] = {}  # each figure's x and y range
        layers = hv.streams.Params(
            state, [side.space, side.method, "color_by", "mask", "hide_filtered", "isolated"],
            rename=names,
        )
        # A new selection is drawn on the server's next turn: its count, cheap, reaches the page
        # first, and the faded map (a full render) follows (docs/benchmarks.md).
        selected = hv.streams.Params(state, ["selection"], watch=False)
        state.param.watch(lambda _event: pn.state.execute(
            lambda: hv.streams.Stream.trigger([selected]), schedule=True), "selection")
        # Starting at the extent shown, HoloViews' own first range event is answered from the
        # DynamicMap's memo: a session's first document holds one render, not two.
        start = (state.x_range, state.y_range) if side.keeps_viewport else (None, None)
        self.range = hv.streams.RangeXY(x_range=start[0] or EXTENT, y_range=start[1] or EXTENT)
        self.size = hv.streams.PlotSize()
        base = hv.DynamicMap(
            self._render, streams=[layers, selected, self.range, self.size]
        )
        self.range.add_subscriber(self._moved)

        markers = hv.DynamicMap(self._markers, streams=[hv.streams.Params(
            state, [side.space, side.method, side.neighbours, "query_point"],
            rename={**names, side.neighbours: "neighbours"})])
        labels = hv.DynamicMap(self._cluster_labels, streams=[hv.streams.Params(
            state, [side.space, side.method, "color_by", "cluster_labels"], rename=names)])
        contours = hv.DynamicMap(self._contours, streams=[hv.streams.Params(
            state, [side.space, side.method, "density_contours"], rename=names)])
        self.param.watch(self._move_ring, "hovered")
        state.param.watch(lambda _event: setattr(self, "hovered", None),
                          [side.space, side.method])
        state.param.watch(self._show_all_if_empty, [side.space, side.method])
        limits = (start[0] or EXTENT, start[1] or EXTENT)
        self.plot = (base * contours * labels * markers).opts(
            hv.opts.RGB(
                responsive=True, xaxis=None, yaxis=None,
                xlim=limits[0], ylim=limits[1], bgcolor="#ffffff", show_legend=False,
                tools=["tap", "box_select", "lasso_select"],
                default_tools=["pan", "wheel_zoom", "reset"],
                active_tools=["pan"], toolbar="above",
                hooks=[weak_hook(self._wire_figure), page_scrolls_over],
                lod={"timeout": ZOOM_SETTLE_MS},
            ),
            hv.opts.Points(
                "Glyphs", color="colour", alpha="alpha", size="size", line_color="white",
                line_width=0.5,
            ),
            hv.opts.Points(
                "Markers", show_legend=False, **RING,
                size=hv.dim("kind").categorize(MARKER_SIZES),
                marker=hv.dim("kind").categorize({"query": "star"}, default="circle"),
            ),
            hv.opts.Contours("DensityContours", color="#222222", alpha=0.55, line_width=1.2,
                             show_legend=False, tools=[]),
            hv.opts.Labels("ClusterLabels", text_font_size="11pt", text_font_style="bold",
                           text_color="#111111", background_fill_color="#ffffff",
                           background_fill_alpha=0.75),
            hv.opts.Overlay(show_legend=False),
        )
        self.pane = pn.pane.HoloViews(self.plot, sizing_mode="stretch_width",
                                      css_classes=list(side.css_classes),
                                      stylesheets=[MAP_CSS])

    def __panel__(self) -> pn.viewable.Viewable:
        return self.pane

    def shown(self) -> tuple[SpaceKey, str]:
        """The feature space and method this map shows."""
        return (SpaceKey.parse(getattr(self.state, self.side.space)),
                getattr(self.state, self.side.method))

    # ------------------------------------------------------------------ rendering
    def _render(self, space, method, color_by, selection, mask, hide_filtered, isolated,
                x_range=None, y_range=None, width=None, height=None, scale=1.0):
        width, height = (int(width * scale), int(height * scale)) if width and height else (
            DEFAULT_SIZE)
        if color_by == CLUSTER and space != self.state.space:
            isolated = ()  # the legend's clusters are the first map's: no cluster of this space
        request = MapRequest(
            space, method, color_by, tuple(x_range or EXTENT), tuple(y_range or EXTENT),
            max(width, 1), max(height, 1), selection=selection, mask=mask,
            hide_filtered=hide_filtered, isolated=tuple(isolated),
        )
        return render_map(self.data, request)

    def _markers(self, space, method, neighbours, query_point):
        """Rings on the clicked point and its neighbours; a star on the upload (which lands on
        the first map only: it is placed in the session's own space)."""
        if self.side != FIRST_MAP:
            query_point = None
        xy = self.data.coords(SpaceKey.parse(space), method)
        rows = [int(r) for r in neighbours]
        kinds = ["focus"] + ["neighbour"] * (len(rows) - 1) if rows else []
        x, y = xy[rows, 0].tolist(), xy[rows, 1].tolist()
        if query_point is not None:
            x, y, kinds = [*x, query_point[0]], [*y, query_point[1]], [*kinds, "query"]
        table = pd.DataFrame({"x": x, "y": y, "kind": kinds})
        return hv.Points(table, kdims=["x", "y"], vdims=["kind"], group="Markers")

    def _contours(self, space, method, density_contours):
        """Lines around where the map's images crowd, when asked for."""
        return (contour_lines(self.data, SpaceKey.parse(space), method) if density_contours
                else no_contours())

    def _cluster_labels(self, space, method, color_by, cluster_labels):
        """Each cluster's most over-represented value at its centre, when asked for."""
        table = (cluster_label_table(self.data, SpaceKey.parse(space), method, color_by)
                 if cluster_labels else pd.DataFrame({"x": [], "y": [], "text": []}))
        return hv.Labels(table, kdims=["x", "y"], vdims=["text"], group="ClusterLabels")

    # ------------------------------------------------------------------ pointer events
    # The pointer, clicks, lassos and boxes are heard through Bokeh's own events, not HoloViews
    # streams: a stream's events wait 10 ms in HoloViews' queue and switch the page's busy
    # indicator on and off around each one. The lasso reports its shape once, when released
    # (Bokeh's default sends it at every step of the drag), and the pointer's moves during a
    # drag are not looked up: at 1M points the server was still answering a lasso's drag when
    # it was released (docs/benchmarks.md). The ring on the hovered point is a Bokeh glyph of
    # its own, not a HoloViews layer: every HoloViews refresh ends with Bokeh walking every
    # model of the document (about 60 ms on this page), while moving the ring is one change to
    # a small data source.

    def _wire_figure(self, plot, _element) -> None:  # through weak_hook
        """HoloViews hook: give the map's figure the hover ring and the pointer's handlers,
        once."""
        figure = plot.state
        if figure.id not in self._rings:
            source = ColumnDataSource(self._ring_data())
            figure.scatter("x", "y", source=source, name=HOVER_RING_NAME, **HOVER_RING)
            figure.on_event(MouseMove, self._hover)
            figure.on_event(PanStart, self._drag_started)
            figure.on_event(PanEnd, self._drag_ended)
            figure.on_event(Tap, self._click)
            figure.on_event(DoubleTap, self._click)  # a second click within 300 ms
            figure.on_event(SelectionGeometry, self._drawn)
            for tool in figure.select(type=LassoSelectTool):
                tool.continuous = False
            self._rings[figure.id] = source
            self._ranges[figure.id] = (figure.x_range, figure.y_range)

    def _ring_data(self) -> dict[str, list[float]]:
        if self.hovered is None:
            return {"x": [], "y": []}
        x, y = self.data.coords(*self.shown())[self.hovered]
        return {"x": [float(x)], "y": [float(y)]}

    def _move_ring(self, _event: param.parameterized.Event) -> None:
        data = self._ring_data()

        def move() -> None:
            for source in self._rings.values():
                source.data = dict(data)

        pn.state.execute(move)  # at once under the document's lock, else on its next tick

    # ------------------------------------------------------------------ viewport
    def _show_all_if_empty(self, _event: param.parameterized.Event) -> None:
        """A zoomed viewport kept across a change of map may hold none of the new map's
        points: then show the whole map."""
        x_range, y_range = self.range.x_range, self.range.y_range
        if not x_range or not y_range or (tuple(x_range), tuple(y_range)) == (EXTENT, EXTENT):
            return
        if len(self.data.points(*self.shown()).in_box(x_range[0], y_range[0], x_range[1],
                                                      y_range[1])):
            return

        def show_all() -> None:
            for x_axis, y_axis in self._ranges.values():
                x_axis.update(start=EXTENT[0], end=EXTENT[1])
                y_axis.update(start=EXTENT[0], end=EXTENT[1])

        self.range.event(x_range=EXTENT, y_range=EXTENT)  # into the state through _moved
        pn.state.execute(show_all)

    # ------------------------------------------------------------------ events
    def nearest(self, x: float | None, y: float | None) -> int | None:
        """The visible row nearest to (x, y) within a few screen pixels."""
        if x is None or y is None:
            return None
        x_range = self.range.x_range or EXTENT
        width = (self.size.width or DEFAULT_SIZE[0])
        radius = HOVER_RADIUS_PX * (x_range[1] - x_range[0]) / width
        among = self.state.mask if self.state.hide_filtered else None
        return self.data.points(*self.shown()).nearest(x, y, radius, among=among)

    def _hover(self, event: MouseMove) -> None:
        """Served, the pointer is looked up at once, then at most every HOVER_INTERVAL_MS
        while it keeps moving, and not while it drags a pan, lasso or box."""
        if not self._dragging:
            self._point_at(event.x, event.y)

    def _drag_started(self, event: PanStart) -> None:
        """A drag's first moves reach the server as hovers before Bokeh knows it is a drag:
        the point is looked up again where the button went down (the pan's start)."""
        self._dragging = True
        self._point_at(event.x, event.y)

    def _drag_ended(self, _event: PanEnd) -> None:
        self._dragging = False

    def _point_at(self, x: float, y: float) -> None:
        self._pointer = (x, y)
        self._look_up_hover()

    def _apply_hover(self) -> None:
        row = self.nearest(*self._pointer)
        if row != self.hovered:
            self.hovered = row

    def _click(self, event: Tap | DoubleTap) -> None:
        row = self.nearest(event.x, event.y)
        if row is not None:
            self.state.focus = row

    def _drawn(self, event: SelectionGeometry) -> None:
        """A lasso or box released on the map: the points inside become the selection."""
        shape = event.geometry or {}
        if not event.final or shape.get("type") not in ("poly", "rect"):
            return
        points = self.data.points(*self.shown())
        if shape["type"] == "poly":
            if len(shape["x"]) < 3:  # a drag too short to enclose anything
                return
            rows = points.in_polygon(np.asarray(shape["x"], dtype=float),
                                     np.asarray(shape["y"], dtype=float))
        else:
            rows = points.in_box(shape["x0"], shape["y0"], shape["x1"], shape["y1"])
        self._select(rows)

    def _select(self, rows: np.ndarray) -> None:
        if self.state.hide_filtered and self.state.mask is not None:
            rows = rows[self.state.mask[rows]]
        self.state.select(rows)

    def _moved(self, x_range=None, y_range=None) -> None:
        if self.side.keeps_viewport:
            self.state.param.update(x_range=x_range, y_range=y_range)


def weak_hook(method: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """A HoloViews plot hook that calls `method` without keeping its object alive. HoloViews
    keeps every element's options, hooks included, in a process-wide tree: a hook bound to a
    session's map kept that session's whole document after it closed (about 2.4 MB a
    session, docs/benchmarks.md)."""
    method_ref = weakref.WeakMethod(method)

    def hook(plot: Any, element: Any) -> None:
        bound = method_ref()
        if bound is not None:
            bound(plot, element)

    return hook
