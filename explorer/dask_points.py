"""The map's point table as a Dask dataframe, for stores larger than the server's memory.

Opened with a Dask scheduler (`--dask`, FSE_DASK: explorer/location.py), the explorer aggregates
the map's image from this table instead of the x-sorted one it keeps in memory otherwise
(explorer/scatter.py). The table holds the points of the view's x range only: the store keeps
each projection sorted by x (projections/by-x, precompute/stages/x_sorted.py), so the range is
one slice of that file, found by a binary search, and a worker builds each partition of at
most PARTITION_ROWS of its points from those rows of the memory-mapped file and their colour
codes and filter, which travel with the task, through the same functions as the in-memory
table (explorer/point_table.py). Datashader aggregates every partition and sums their images,
so no process holds the whole table, and a zoomed view reads only what it shows. The colour
codes are put in x order once per colouring and shared by the sessions.

A store whose project stage predates the sorted copies is read in image order, every point on
every render (logged once; `precompute project` writes the copies).

Still held by the server: each projection's x and y (float32, for hover, lasso, and the
selection overlay and glyphs, which touch few points), the attribute table with its colour
codes, and each session's selection and filter rows. Workers need this package and the store
at the same path as the server.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from explorer.data import ExplorerData, scaled_to_map
from explorer.location import LOCAL_CLUSTER
from explorer.point_table import Colouring, filtered
from precompute.store import SpaceKey, Store

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

    from explorer.scatter import MapRequest

log = logging.getLogger(__name__)
PARTITION_ROWS = 1_000_000

_clients: dict[str, Client] = {}
_connecting = threading.Lock()  # the warm-up and the first session may ask at once


def client(scheduler: str) -> Client:
    """This process's client of `scheduler`: LOCAL_CLUSTER starts a `LocalCluster` (worker
    processes sized to the machine's cores, no dashboard); anything else is a scheduler's
    address, e.g. tcp://host:8786."""
    from distributed import Client, LocalCluster

    with _connecting:
        if scheduler not in _clients:
            local = scheduler == LOCAL_CLUSTER
            cluster = LocalCluster(dashboard_address=None) if local else scheduler
            # not the process's default client: only the map's aggregates run on it
            _clients[scheduler] = Client(cluster, set_as_default=False)
        return _clients[scheduler]


def point_table(data: ExplorerData, request: MapRequest, colouring: Colouring) -> dd.DataFrame:
    """The points of the request's map whose x lies in its x range (a slice of the x-sorted
    copy; every point of a store without one): x, y and the colour columns of `colouring`,
    filtered by the request's mask as `point_table.filtered` does, in x order and in partitions
    of at most PARTITION_ROWS rows."""
    import dask.dataframe as dd

    space = SpaceKey.parse(request.space)
    scale = data.map_scale(space, request.method)
    by_x = data.store.load_x_sorted(space, request.method)
    if by_x is None:
        _note_unsorted(data.store.root, request.space, request.method)
        start, stop, order, colours = 0, len(data), None, colouring
    else:
        start, stop = x_span(by_x["x"], request.x_range, scale)
        order = by_x["row"]
        key = ("colouring by x", request.space, request.method, request.color_by)
        colours = data.derived(key, lambda: colouring.take(np.asarray(order)))

    def part(first: int, last: int) -> _Part:
        span = slice(first, last)  # a task carries only its rows' colours and filter
        mask = request.mask
        if mask is not None:
            mask = mask[span] if order is None else mask[order[span]]
        return _Part(data.store, space, request.method, scale, span, order is not None,
                     colours.take(span), mask, request.hide_filtered)

    parts = [part(first, min(first + PARTITION_ROWS, stop))
             for first in range(start, stop, PARTITION_ROWS)] or [part(start, start)]
    meta = part(0, 0).points(np.empty((0, 2), dtype=np.float32))
    return dd.from_map(_partition, parts, meta=meta, label="map-points")


def x_span(xs: np.ndarray, x_range: tuple[float, float], scale: tuple[np.ndarray, float]
           ) -> tuple[int, int]:
    """The first and past-the-last positions in `xs` (projection x, ascending) of the points
    whose map x lies in `x_range`, widened by a hair so that rounding into map coordinates
    leaves none out (datashader drops any point outside the view)."""
    centre, half = scale
    margin = 1e-5 * half
    low, high = (bound * half + centre[0] for bound in x_range)
    return (int(np.searchsorted(xs, low - margin, side="left")),
            int(np.searchsorted(xs, high + margin, side="right")))


@functools.cache
def _note_unsorted(root: Path, space: str, method: str) -> None:
    log.warning("%s has no x-sorted copy of the %s map of %s: every render reads all its "
                "points; `precompute project %s` writes it", root, method, space, root)


@dataclass(frozen=True)
class _Part:
    """One partition: `span` of the x-sorted copy (`sorted`) or of the projection, with the
    colouring and filter mask of those points."""

    store: Store
    space: SpaceKey
    method: str
    scale: tuple[np.ndarray, float]  # ExplorerData.map_scale
    span: slice
    sorted: bool
    colouring: Colouring
    mask: np.ndarray | None
    hide: bool

    def points(self, xy: np.ndarray) -> pd.DataFrame:
        """The partition's table, given its map coordinates (rows × 2)."""
        return filtered(self.colouring.columns(xy[:, 0], xy[:, 1]), self.mask, self.hide)


def _partition(part: _Part) -> pd.DataFrame:
    """Run on a worker: the partition's rows of the memory-mapped projection, scaled into map
    coordinates as the server's own copy is, with their colours."""
    if part.sorted:
        points = part.store.load_x_sorted(part.space, part.method)[part.span]
        projected = np.column_stack([points["x"], points["y"]])
    else:
        projected = part.store.load_projection(part.space, part.method)[part.span]
    return part.points(scaled_to_map(projected, part.scale))
