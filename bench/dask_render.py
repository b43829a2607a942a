"""The map through Dask, beyond the server's memory: renders of a whole view and of zoomed
views through a local cluster of worker processes, and the memory the server and the workers
hold.

    python bench/synthetic.py --rows 100000000 --dim 8 --zero-embeddings --no-index \
        --out bench/stores/100000000x8
    python bench/dask_render.py --store bench/stores/100000000x8 [--workers 2] [--rounds 5]
        [--read-all]

Every render is the map's image computed anew (`map_image`: the whole map's image, which the
server otherwise keeps once made, included), coloured by the attribute a session opens on, at
800 × 600 px. A zoomed view is a tenth of the map's width and height around a point drawn at
random. `--read-all` serves the store as one made before the blocked copies (every render
aggregates every point), for the comparison. Rows go to bench/results.json through bench/run.py's
format.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.browser_measures import rss_mb  # noqa: E402
from bench.measures import Row, row, timed  # noqa: E402

WIDTH, HEIGHT = 800, 600
ZOOM = 10  # a zoomed view shows this fraction of the map's width and height
GOALS = {"whole": 2000, "zoomed": 300}  # ms at 100M points (issue 19, section 5)


def dask_measures(store: Path, workers: int, rounds: int, read_all: bool = False) -> list[Row]:
    """Whole-view and zoomed renders of `store`'s opening map through a local cluster of
    `workers` one-thread worker processes, and the memory each side holds."""
    from distributed import LocalCluster

    from explorer import dask_points
    from explorer.data import load_explorer_data
    from explorer.page import default_space
    from explorer.scatter import EXTENT, MapRequest, map_image
    from precompute.store import Store

    if read_all:  # as a store whose project stage came before the copies
        Store.x_sorted_path = lambda self, space, method: self.root / "no such copy.npy"
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        began = time.perf_counter()
        data = load_explorer_data(str(store.resolve()), cluster.scheduler_address)
        space = default_space(data.spaces)
        method, colour = data.best_method(space), data.colour_attributes[0]
        opened = time.perf_counter() - began
        whole = MapRequest(str(space), method, colour, EXTENT, EXTENT, WIDTH, HEIGHT)
        began = time.perf_counter()
        map_image(data, whole)  # the first: colour codes put in x order, workers' compilation
        first = time.perf_counter() - began
        coords = data.coords(space, method)
        rng = np.random.default_rng(0)
        half = (EXTENT[1] - EXTENT[0]) / ZOOM / 2

        def zoomed() -> None:
            x, y = coords[rng.integers(len(coords))]
            map_image(data, MapRequest(str(space), method, colour, (x - half, x + half),
                                       (y - half * HEIGHT / WIDTH, y + half * HEIGHT / WIDTH),
                                       WIDTH, HEIGHT))

        whole_ms, zoomed_ms = [], []
        for _ in range(rounds):  # in turn, so both see the same hour of this machine
            whole_ms += timed(lambda: map_image(data, whole), 1)
            zoomed_ms += timed(zoomed, 3)
        client = dask_points.client(cluster.scheduler_address)
        worker_mb = sum(rss_mb(pid) for pid in client.run(os.getpid).values())
        server_mb = rss_mb(os.getpid())
        client.close()
    n = len(data)
    label = "Dask" + (", every point read (no blocked copy)" if read_all else "")
    print(f"opened in {opened:.1f} s; first render {first:.1f} s; whole {whole_ms}; "
          f"zoomed {zoomed_ms}")
    at_goal = n >= 100_000_000
    return [
        row(f"{label}: open the store (server)", n, None, opened, "s"),
        row(f"{label}: first render (the workers' blocks made)", n, None, first * 1000, "ms"),
        row(f"{label}: whole-view render, {workers} workers ({WIDTH}×{HEIGHT})", n, None,
            statistics.median(whole_ms), "ms", GOALS["whole"] if at_goal else None),
        row(f"{label}: zoomed-view render (1/{ZOOM} of the width), {workers} workers", n, None,
            statistics.median(zoomed_ms), "ms", GOALS["zoomed"] if at_goal else None),
        row(f"{label}: server memory after the renders", n, None, server_mb, "MiB"),
        row(f"{label}: {workers} workers' memory after the renders", n, None, worker_mb, "MiB"),
    ]


def main() -> None:
    from bench.run import RESULTS, print_table, save_rows

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--read-all", action="store_true",
                        help="serve the store as one without x-sorted copies")
    args = parser.parse_args()
    rows = dask_measures(args.store, args.workers, args.rounds, args.read_all)
    print_table(rows)
    save_rows(rows)
    print(f"→ {RESULTS}")


if __name__ == "__main__":
    main()
