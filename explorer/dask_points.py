"""The map's image aggregated on Dask workers, for stores larger than the server's memory.

Opened with a Dask scheduler (`--dask`, FSE_DASK: explorer/location.py), the explorer aggregates
the map's image on the workers instead of from the x-sorted table it keeps in memory otherwise
(explorer/scatter.py). The store keeps each projection in blocks of x, each block sorted by y
(projections/by-x, precompute/stages/x_sorted.py). The workers hold those blocks: each block's
map coordinates once per projection and its colour columns once per colouring, built from its
rows of the memory-mapped file and their colour codes (sent once) through the same functions as
the in-memory table (explorer/point_table.py). A render aggregates only the blocks whose x
overlaps the view's, and of each only the points in the view's range of y (a binary search in
the file), with datashader as the in-memory path does; the filter of those points travels with
the tasks. Each worker thread aggregates the viewed parts of the blocks its worker holds, adding
up as it goes, and only those totals travel, to be added once. No process holds the whole
table, and a zoomed view aggregates little more than what it shows.

Why not datashader's own Dask support: for each render it builds new compiled functions that
Dask pickles to tokenize and to ship, and it reads every partition anew: at 10M points 0.3 s
and more a render whatever the view (profiled, docs/benchmarks.md). Here a worker calls
datashader's pandas path, which compiles once per process.

A store whose project stage predates the blocked copies is held in image order, in blocks of
X_BLOCK_ROWS, and every render aggregates all of it (logged once; `precompute project` writes
the copies).

Held by the server: each projection's x and y (float32, for hover, lasso, and the selection
overlay and glyphs, which touch few points), the attribute table with its colour codes, and each
session's selection and filter rows. Held by the workers: 8 bytes a point for each of the last
KEPT projections drawn and 4 (numeric) or 12 bytes a point for each of the last KEPT
colourings. Workers need this package and the store at the same path as the server.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import datashader as ds
import numpy as np
import pandas as pd
import xarray as xr

from explorer.data import ExplorerData, scaled_to_map
from explorer.location import LOCAL_CLUSTER
from explorer.point_table import Colouring, filtered
from precompute.stages.x_sorted import x_sorted_recipe
from precompute.store import X_BLOCK_ROWS, SpaceKey, Store

if TYPE_CHECKING:
    from distributed import Client, Future

    from explorer.scatter import MapRequest

Sums = dict[str, np.ndarray]  # an aggregate of blocks: per pixel sums and counts, by name

log = logging.getLogger(__name__)
KEPT = 2  # projections, and colourings, whose blocks the workers hold
WORKERS_TIMEOUT_S = 120  # how long the first render waits for a worker to join

_clients: dict[str, Client] = {}
_connecting = threading.Lock()  # the warm-up and the first session may ask at once


def client(scheduler: str) -> Client:
    """This process's client of `scheduler`: LOCAL_CLUSTER starts a `LocalCluster` (worker
    processes sized to the machine's cores, no dashboard) whose scheduler and workers listen
    on 127.0.0.1 only, as the explorer's server does (a Dask scheduler runs whatever code it
    is sent); anything else is a scheduler's address, e.g. tcp://host:8786."""
    from distributed import Client, LocalCluster

    with _connecting:
        if scheduler not in _clients:
            local = scheduler == LOCAL_CLUSTER
            cluster = (LocalCluster(host="127.0.0.1", dashboard_address=None) if local
                       else scheduler)
            # not the process's default client: only the map's aggregates run on it
            _clients[scheduler] = Client(cluster, set_as_default=False)
        return _clients[scheduler]


def map_aggregate(data: ExplorerData, request: MapRequest, colouring: Colouring,
                  canvas: ds.Canvas, summary: ds.summary) -> xr.Dataset:
    """`summary` per pixel of `canvas` over the request's points, aggregated on the workers:
    what `canvas.points(table, "x", "y", summary)` gives for the whole table in memory.

    Each worker thread gets one task: the viewed parts of blocks that its worker holds, which
    it aggregates in turn, about a block's points at a time (a zoomed view's small parts of
    many blocks together), adding up as it goes. Only those totals travel, to be added once."""
    dask_client = client(data.dask)
    source = source_of(data, request)
    held = held_blocks(data, source, request, colouring)
    order = source.order  # read once: a filter takes its rows of each viewed block from it
    threads = dask_client.nthreads()
    homes: dict[str, list[tuple[int, slice]]] = {}
    for block, rows in viewed_blocks(source, request, len(data)):
        homes.setdefault(held.homes[block], []).append((block, rows))
    totals = [
        dask_client.submit(
            _aggregate_parts, [held.places[block] for block, _ in share],
            [held.colours[block] for block, _ in share], [rows for _, rows in share],
            [_mask_of(request.mask, order, source.block_rows, block, rows)
             for block, rows in share],
            request.hide_filtered, canvas, _additive(summary), source.block_rows,
            workers=[home], allow_other_workers=True, pure=False)
        for home, viewed in homes.items()
        for thread in range(threads.get(home, 1))
        if (share := viewed[thread::threads.get(home, 1)])]
    empty = _empty_table(colouring, request)
    if not totals:
        return canvas.points(empty, "x", "y", summary)
    total = dask_client.submit(_added, *totals, pure=False)
    return _finished(total.result(), summary, canvas, empty)


def _mask_of(mask: np.ndarray | None, order: np.ndarray | None, block_rows: int, block: int,
             rows: slice) -> np.ndarray | None:
    """The filter `mask` (None: none) of `rows` of `block`, whose points are those rows of
    `order` (None: of the projection itself)."""
    if mask is None:
        return None
    span = slice(block * block_rows + rows.start, block * block_rows + rows.stop)
    return mask[span] if order is None else mask[order[span]]


@dataclass(frozen=True)
class Held:
    """A map's blocks on the workers: each block's map coordinates and colour columns, and
    the worker that holds both (its home)."""

    places: list[Future]
    colours: list[Future]
    homes: list[str]


def held_blocks(data: ExplorerData, source: Source, request: MapRequest, colouring: Colouring
                ) -> Held:
    """The workers' blocks of the request's map as `source` cuts them, dealt to the workers in
    turn: made the first time they are asked for and kept while among the last KEPT
    projections and KEPT colourings (of each state of the store the server has open)."""
    dask_client = client(data.dask)
    spans = [slice(start, min(start + source.block_rows, len(data)))
             for start in range(0, len(data), source.block_rows)]

    def places() -> tuple[list[Future], list[str]]:
        dask_client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        workers = sorted(dask_client.nthreads())
        homes = [workers[block % len(workers)] for block in range(len(spans))]
        return [dask_client.submit(_block_places, source, span, workers=[home],
                                   allow_other_workers=True, pure=False)
                for span, home in zip(spans, homes, strict=True)], homes

    key = (request.space, request.method, source.sorted, source.block_rows)
    placed, homes = data.derived(("map blocks", *key), places, keep=KEPT)

    def colours() -> list[Future]:
        order = source.order
        ordered = colouring if order is None else colouring.take(np.asarray(order))
        return [dask_client.submit(_block_colours, ordered.take(span), workers=[home],
                                   allow_other_workers=True, pure=False)
                for span, home in zip(spans, homes, strict=True)]

    coloured = data.derived(("colour blocks", *key, request.color_by), colours, keep=KEPT)
    return Held(placed, coloured, homes)


def viewed_blocks(source: Source, request: MapRequest, count: int) -> list[tuple[int, slice]]:
    """The blocks whose x overlaps the request's x range, each with the rows of it whose y
    lies in its y range (every block whole when `source` reads the projection itself);
    `count`: the map's points."""
    if source.x_bounds is None:
        return [(block, slice(0, source.block_rows))
                for block in range(-(-count // source.block_rows))]
    (x_low, x_high), (y_low, y_high) = (_projected(source.scale, axis, bounds) for axis, bounds
                                        in enumerate((request.x_range, request.y_range)))
    overlapping = np.flatnonzero((source.x_bounds[:, 1] >= x_low)
                                 & (source.x_bounds[:, 0] <= x_high))
    ys = _file_of(source)["y"]
    viewed = []
    for block in overlapping.tolist():
        block_ys = ys[block * source.block_rows:(block + 1) * source.block_rows]
        rows = slice(int(np.searchsorted(block_ys, y_low, side="left")),
                     int(np.searchsorted(block_ys, y_high, side="right")))
        if rows.stop > rows.start:
            viewed.append((block, rows))
    return viewed


def _projected(scale: tuple[np.ndarray, float], axis: int, bounds: tuple[float, float]
               ) -> tuple[float, float]:
    """A range of map coordinates on `axis` in projection coordinates, widened by a hair (and
    by float32's step at the map's place) so that rounding into map coordinates leaves no
    point out (datashader drops any outside the view)."""
    centre, half = float(scale[0][axis]), float(scale[1])
    margin = 1e-5 * half + float(np.spacing(np.float32(abs(centre) + half)))
    return bounds[0] * half + centre - margin, bounds[1] * half + centre + margin


@functools.cache
def _note_unsorted(root: Path, space: str, method: str) -> None:
    log.warning("%s has no current blocked copy of the %s map of %s: every render reads all its "
                "points; `precompute project --store %s` writes it", root, method, space, root)


@dataclass(frozen=True)
class Source:
    """Where the workers read a map's points: its blocked copy (`order`: each point's row), or
    the projection itself (`order` None: a store from before the copies, or a copy older than
    its projection)."""

    store: Store
    space: SpaceKey
    method: str
    scale: tuple[np.ndarray, float]  # ExplorerData.map_scale
    sorted: bool
    block_rows: int
    x_bounds: np.ndarray | None  # each block's least and greatest x (projection coordinates)

    @property
    def order(self) -> np.ndarray | None:
        """Memory-mapped on the server, not pickled with the source."""
        return _file_of(self)["row"] if self.sorted else None


def source_of(data: ExplorerData, request: MapRequest) -> Source:
    """Where the request's map is read: its blocked copy when the copy is of this projection
    and of every point, else the projection itself."""
    space = SpaceKey.parse(request.space)
    scale = data.map_scale(space, request.method)
    path = data.store.x_sorted_path(space, request.method)
    meta = data.store.meta(path)
    if (meta is None or meta.get("count") != len(data) or not data.store.is_current(
            path, x_sorted_recipe(data.store, space, request.method, meta["block_rows"]))):
        _note_unsorted(data.store.root, request.space, request.method)
        return Source(data.store, space, request.method, scale, False, X_BLOCK_ROWS, None)
    return Source(data.store, space, request.method, scale, True, meta["block_rows"],
                  np.array(meta["x_bounds"], dtype=np.float64).reshape(-1, 2))


def _file_of(source: Source) -> np.ndarray:
    """The memory-mapped file the source's points are read from."""
    if source.sorted:
        return source.store.load_x_sorted(source.space, source.method)
    return source.store.load_projection(source.space, source.method)


def _block_places(source: Source, span: slice) -> tuple[np.ndarray, np.ndarray]:
    """Run on a worker: the map coordinates (x, y) of the block's points, scaled as the
    server's own copy is."""
    points = _file_of(source)[span]
    projected = np.column_stack([points["x"], points["y"]]) if source.sorted else points
    xy = scaled_to_map(projected, source.scale)
    return np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])


def _block_colours(colouring: Colouring) -> dict[str, np.ndarray]:
    """Run on a worker: the block's colour columns."""
    return {name: np.ascontiguousarray(values) for name, values in colouring.channels().items()}


def _aggregate_parts(places: list[tuple[np.ndarray, np.ndarray]],
                     colours: list[dict[str, np.ndarray]], rows: list[slice],
                     masks: list[np.ndarray | None], hide: bool, canvas: ds.Canvas,
                     summary: ds.summary, size: int) -> Sums:
    """Run on a worker: the aggregate of `rows` of each of these blocks as the filter draws
    them, at least `size` points (or the last of them) per pass of datashader."""
    total: Sums | None = None
    tables: list[pd.DataFrame] = []
    for (x, y), block, part, mask in zip(places, colours, rows, masks, strict=True):
        table = pd.DataFrame({"x": x[part], "y": y[part],
                              **{name: values[part] for name, values in block.items()}},
                             copy=False)
        tables.append(filtered(table, mask, hide))
        if sum(len(t) for t in tables) >= size:
            total = _aggregate_onto(total, tables, canvas, summary)
            tables = []
    return _aggregate_onto(total, tables, canvas, summary) if tables else total


def _aggregate_onto(total: Sums | None, tables: list[pd.DataFrame], canvas: ds.Canvas,
                    summary: ds.summary) -> Sums:
    """The aggregate of `tables` together (NaN as 0), added to `total` (None: the first)."""
    table = tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)
    aggregate = canvas.points(table, "x", "y", summary)
    sums = {name: np.nan_to_num(aggregate[name].to_numpy(), nan=0.0, copy=False)
            for name in aggregate.data_vars}
    for name, values in (total or {}).items():
        sums[name] += values
    return sums


def _additive(summary: ds.summary) -> ds.summary:
    """`summary` as reductions that add across blocks: a mean becomes the sum and the count
    of the values it is taken over. Its sums are of colour channels, which every point has, so
    a pixel's total `count` says where they have none."""
    reductions = {}
    for name, reduction in zip(summary.keys, summary.values, strict=True):
        if isinstance(reduction, ds.mean):
            reductions[f"{name} sum"] = ds.sum(reduction.column)
            reductions[f"{name} values"] = ds.count(reduction.column)
        else:
            reductions[name] = reduction  # a count, or a channel's sum beside "count"
    return ds.summary(**reductions)


def _added(*aggregates: Sums) -> Sums:
    """Aggregates (NaN as 0) added pixel by pixel."""
    return {name: np.add.reduce([aggregate[name] for aggregate in aggregates])
            for name in aggregates[0]}


def _finished(total: Sums, summary: ds.summary, canvas: ds.Canvas, empty: pd.DataFrame
              ) -> xr.Dataset:
    """The added aggregates as datashader gives `summary` over the whole table: each mean its
    sum over its count of values, and a sum or mean NaN where it has none. `empty` is the table
    with no rows, whose aggregate gives the canvas's coordinates."""
    values = {}
    for name, reduction in zip(summary.keys, summary.values, strict=True):
        if isinstance(reduction, ds.mean):
            counts = total[f"{name} values"]
            with np.errstate(invalid="ignore", divide="ignore"):
                values[name] = np.where(counts > 0, total[f"{name} sum"] / counts, np.nan)
        elif isinstance(reduction, ds.sum):
            values[name] = np.where(total["count"] > 0, total[name], np.nan)
        else:
            values[name] = total[name]
    return canvas.points(empty, "x", "y", summary).copy(data=values)


def _empty_table(colouring: Colouring, request: MapRequest) -> pd.DataFrame:
    """The columns of the tables the workers aggregate, with no rows."""
    none = np.empty(0, dtype=np.float32)
    mask = None if request.mask is None else np.empty(0, dtype=bool)
    return filtered(colouring.take(slice(0, 0)).columns(none, none), mask,
                    request.hide_filtered)
