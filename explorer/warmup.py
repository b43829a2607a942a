"""Load a store and render its map once, so numba compiles datashader's kernels at server start
instead of during the first visitor's page load (about 10 s on two cores), and the view every
session opens on is ready before the first one does."""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

import datashader as ds
import datashader.transfer_functions as tf
import pandas as pd

from explorer.data import load_explorer_data, store_ready
from explorer.page import default_space
from explorer.scatter import DEFAULT_SIZE, EXTENT, MapRequest, render_map

log = logging.getLogger(__name__)
WAIT_S = 1.0  # how often a store with no map yet is looked at again


def warm_up(root: Path, dask: str | None = None) -> None:
    """Render one small map per colour kind of the store at `root` and the whole map a session
    opens on, through the Dask scheduler `dask` if given, as the pages will (starting its
    cluster). A store with no map yet (still being built, or not started) is waited for, so its
    first map's first render finds the kernels compiled or compiling."""
    while not store_ready(root):
        time.sleep(WAIT_S)
    began = time.perf_counter()
    data = load_explorer_data(str(root), dask)  # as `Explorer` calls it: the same cached data
    space = default_space(data.spaces)
    method = data.best_method(space)  # the map a session opens on
    kinds = {}
    for attribute in data.colour_attributes:
        kinds.setdefault(data.kinds[attribute], attribute)
    for attribute in kinds.values():
        render_map(data, MapRequest(str(space), method, attribute, EXTENT, EXTENT, 64, 64))
    render_map(data, MapRequest(str(space), method, data.colour_attributes[0], EXTENT, EXTENT,
                                *DEFAULT_SIZE))
    points = data.points(space, method)
    _ = points.tree, points.by_x  # the first hover and lasso would otherwise build them
    # dynspread's kernels compile on first use (~9 s), whatever the data: spread once here.
    canvas = ds.Canvas(plot_width=8, plot_height=8)
    tf.spread(tf.shade(canvas.points(pd.DataFrame({"x": [0.0], "y": [0.0]}), "x", "y")), px=1)
    keep_out_of_collections()
    log.info("explorer ready for %s in %.1f s", root, time.perf_counter() - began)


def keep_out_of_collections() -> None:
    """Move every object alive now (the store's data and the libraries, which live as long as
    the server) out of the cycle collector's reach. Each full collection walked them all and
    stopped the server for 0.2-0.4 s at 1M points, in the middle of whatever a page was waiting
    for (docs/benchmarks.md, Browser round trips). Called once, when the warm-up ends: a
    session open at that moment (usually none, or the small page that waits for a store's
    first map) is never cycle-collected after it closes, a few MB once per server start."""
    gc.collect()
    gc.freeze()
