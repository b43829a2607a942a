"""Server time of the compare view's two maps (explorer/compare_view.py) at scale: two layers
of a synthetic store rendered for one shared colouring, selection, filter or isolated value,
as the server does when any of those change with both maps open.

    python bench/compare_maps.py --rows 1000000

Measured, each the median of the two maps rendered one after the other at 600×600 (a compare
map's size on a 1500-px window): the whole maps (shared by every session), both with the
same selection (a box holding about a tenth of the first map), both with a filter (half the
images), both with an isolated value; and a pan of one map, which renders that map only.
Goal: twice the main map's render goal at 1M (2 × 50 ms). Rows go to bench/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measures import Row, row, timed  # noqa: E402
from bench.synthetic import METHOD, layered_store  # noqa: E402

REPEATS = 9
SIDE_PX = 600
GOAL_MS = 2 * 50.0


def compare_rows(store: Path) -> list[Row]:
    from explorer.data import load_explorer_data
    from explorer.scatter import EXTENT, MapRequest, render_map

    data = load_explorer_data(str(store.resolve()))
    first, second = str(data.spaces[-1]), str(data.spaces[0])
    n, colour = len(data), "group"
    whole = MapRequest(first, METHOD, colour, EXTENT, EXTENT, SIDE_PX, SIDE_PX)

    def both(**changes) -> None:
        for space in (first, second):
            render_map(data, dataclasses.replace(whole, space=space, **changes))

    both()  # each whole map once, as the process's first session does
    box = data.points(data.spaces[-1], METHOD).in_box(-0.3, -0.3, 0.3, 0.3)
    mask = np.random.default_rng(0).random(n) < 0.5
    cases = {
        "whole maps (shared)": {},
        f"same selection ({len(box):,} images)": {"selection": box},
        "same filter (half the images)": {"mask": mask},
        "same isolated value": {"isolated": ("group 03",)},
    }
    name = f"compare view, two maps at {SIDE_PX}×{SIDE_PX} (server)"
    rows = [row(f"{name}: {case}", n, None,
                statistics.median(timed(lambda c=changes: both(**c), REPEATS)), "ms", GOAL_MS)
            for case, changes in cases.items()]
    rng = np.random.default_rng(1)

    def pan_one() -> None:
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        render_map(data, dataclasses.replace(whole, x_range=(cx - 0.4, cx + 0.4),
                                             y_range=(cy - 0.4, cy + 0.4)))

    rows.append(row(f"{name}: a pan of one map", n, None,
                    statistics.median(timed(pan_one, REPEATS)), "ms", GOAL_MS / 2))
    return rows


def main() -> None:
    from bench.run import print_table, save_rows

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = compare_rows(layered_store(args.rows, 4))  # the layer strip bench's store
    print_table(rows)
    save_rows(rows)


if __name__ == "__main__":
    main()
