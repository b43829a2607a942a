"""Server time of the layer strip (explorer/layer_strip.py) at scale: every layer's small map
rendered as a 180×180 PNG, on a synthetic store with several layers.

    python bench/layer_strip.py --rows 1000000 --layers 4

Measured: the strip's first build in a process (every layer's whole map rendered), the same
strip again (each whole map is rendered once per process and shared), and the strip with a
filter or an isolated value (rendered anew every time). Goal: 50 ms per layer, the main map's
render goal at 1M. Rows go to bench/results.json.
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

from bench.measures import Row, row, timed  # noqa: E402
from bench.synthetic import METHOD, layered_store  # noqa: E402

REPEATS = 9


def strip_rows(store: Path, layers: int) -> list[Row]:
    from explorer.data import load_explorer_data
    from explorer.layer_strip import strip_content

    data = load_explorer_data(str(store.resolve()))
    space, colour, n = str(data.spaces[-1]), "group", len(data)
    assert len(data.spaces) == layers
    goal = 50.0 * layers
    began = time.perf_counter()
    strip_content(data, space, METHOD, colour)
    first = (time.perf_counter() - began) * 1000
    cached = statistics.median(timed(lambda: strip_content(data, space, METHOD, colour),
                                     REPEATS))
    mask = np.random.default_rng(0).random(n) < 0.5
    filtered = statistics.median(timed(
        lambda: strip_content(data, space, METHOD, colour, mask=mask), REPEATS))
    isolated = statistics.median(timed(
        lambda: strip_content(data, space, METHOD, colour, isolated=("group 03",)), REPEATS))
    name = f"layer strip, {layers} layers at 180×180 (server)"
    return [row(f"{name}: first in a process", n, None, first, "ms", goal),
            row(f"{name}: again (whole maps shared)", n, None, cached, "ms", goal),
            row(f"{name}: with a filter", n, None, filtered, "ms", goal),
            row(f"{name}: with an isolated value", n, None, isolated, "ms", goal)]


def main() -> None:
    from bench.run import print_table, save_rows

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    rows = strip_rows(layered_store(args.rows, args.layers), args.layers)
    print_table(rows)
    save_rows(rows)


if __name__ == "__main__":
    main()
