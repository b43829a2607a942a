"""Images on the map: the render of a zoomed view that draws its points' thumbnails, first
(decoding them) and again (decoded thumbnails kept), on the sample store.

    python bench/map_images.py [--store sample_data/store] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measures import Row, row  # noqa: E402


def measure(store: Path, repeats: int) -> list[Row]:
    """First and repeated render times of two zoomed views, the second wider."""
    from explorer.data import load_explorer_data
    from explorer.page import default_space
    from explorer.scatter import MapRequest, render_map

    data = load_explorer_data(str(store.resolve()))
    space = default_space(data.spaces)
    method = data.best_method(space)
    coords = data.coords(space, method)
    render_map(data, MapRequest(str(space), method, "style", (-1.05, 1.05), (-1.05, 1.05),
                                700, 700))  # the process's first render, not measured
    rows: list[Row] = []
    for half in (0.5, 0.7):
        request = MapRequest(str(space), method, "style", (-half, half), (-half, half), 700, 700)
        shown = int((np.abs(coords) <= half).all(axis=1).sum())
        began = time.perf_counter()
        render_map(data, request)
        first = (time.perf_counter() - began) * 1000
        again = []
        for _ in range(repeats):
            began = time.perf_counter()
            render_map(data, request)
            again.append((time.perf_counter() - began) * 1000)
        rows += [row("zoomed view with images, first render (decodes)", shown, None, first, "ms"),
                 row("zoomed view with images, again (decoded kept)", shown, None,
                     statistics.median(again), "ms")]
    return rows


def main() -> None:
    from bench.run import SAMPLE_STORE, print_table, save_rows

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=SAMPLE_STORE)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = measure(args.store, args.repeats)
    print_table(rows)
    save_rows(rows)


if __name__ == "__main__":
    main()
