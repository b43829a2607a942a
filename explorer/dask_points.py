"""The map's point table as a Dask dataframe, for stores larger than the server's memory.

Opened with a Dask scheduler (`--dask`, FSE_DASK: explorer/location.py), the explorer aggregates
the map's image from this table instead of the x-sorted one it keeps in memory otherwise
(explorer/scatter.py). A worker builds each partition of PARTITION_ROWS points from those rows
of the store's memory-mapped projection and the colour codes and filter of those rows, which
travel with the task, through the same functions as the in-memory table
(explorer/point_table.py); datashader aggregates every partition (it needs no sort: it keeps
what falls in the viewport) and sums their images, so no process holds the whole table.

Still held by the server: each projection's x and y (float32, for hover, lasso, and the
selection overlay and glyphs, which touch few points), the attribute table with its colour
codes, and each session's selection and filter rows. Workers need this package and the store
at the same path as the server.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
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


def point_table(data: ExplorerData, space: SpaceKey, method: str, colouring: Colouring,
                mask: np.ndarray | None, hide: bool) -> dd.DataFrame:
    """Every point of `method`'s map of `space`: x, y and the colour columns of `colouring`,
    filtered by `mask` (rows inside the filter; None: none) as `point_table.filtered` does, in
    image order and in partitions of PARTITION_ROWS rows."""
    import dask.dataframe as dd

    scale = data.map_scale(space, method)

    def part(start: int, stop: int) -> _Part:
        rows = slice(start, stop)  # a task carries only its rows of the colours and the filter
        return _Part(data.store, space, method, scale, rows, colouring.take(rows),
                     None if mask is None else mask[rows], hide)

    parts = [part(start, min(start + PARTITION_ROWS, len(data)))
             for start in range(0, len(data), PARTITION_ROWS)]
    meta = part(0, 0).points(np.empty((0, 2), dtype=np.float32))
    return dd.from_map(_partition, parts, meta=meta, label="map-points")


@dataclass(frozen=True)
class _Part:
    """One partition: `rows` of the projection, with their colouring and filter mask."""

    store: Store
    space: SpaceKey
    method: str
    scale: tuple[np.ndarray, float]  # ExplorerData.map_scale
    rows: slice
    colouring: Colouring
    mask: np.ndarray | None
    hide: bool

    def points(self, xy: np.ndarray) -> pd.DataFrame:
        """The partition's table, given its map coordinates (rows × 2)."""
        return filtered(self.colouring.columns(xy[:, 0], xy[:, 1]), self.mask, self.hide)


def _partition(part: _Part) -> pd.DataFrame:
    """Run on a worker: the partition's rows of the memory-mapped projection, scaled into map
    coordinates as the server's own copy is, with their colours."""
    projected = part.store.load_projection(part.space, part.method)[part.rows]
    return part.points(scaled_to_map(projected, part.scale))
