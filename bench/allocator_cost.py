"""What glibc's allocator costs the server against Python's own (pymalloc): the work of a
session, timed in a process started with each allocator in turn.

    python bench/allocator_cost.py --store sample_data/store [--rounds 3] [--repeats 8]

A shared server is best started with PYTHONMALLOC=malloc (`make demo` does; docs/benchmarks.md,
*Twenty users at once*): every object then comes from glibc's heap, which hands a closed
session's memory back. Python's allocator is tuned for small objects, so this measures what
the switch costs: building a session's whole page as Bokeh models (`explorer_page`, what each
visitor's document costs the server) and rendering the map after a pan or zoom. The
allocators are taken in turn, `rounds` times (the machine's speed drifts); each row is the
median over the rounds of each process's median, and the ratio glibc / pymalloc is a row of
its own. Rows go to bench/results.json through bench/run.py's format.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.load import ALLOCATORS  # noqa: E402
from bench.measures import Row, row  # noqa: E402

MEASURES = ("session page built (server)", "render after pan/zoom (server, 800×600)")


def session_work(store: Path, repeats: int) -> dict[str, float]:
    """Milliseconds (median of `repeats`) to build a session's page and to render a panned map,
    in this process, after one of each to warm caches and compiled kernels."""
    import numpy as np
    from bokeh.document import Document

    from explorer.data import load_explorer_data
    from explorer.page import default_space, explorer_page
    from explorer.scatter import MapRequest, render_map

    data = load_explorer_data(str(store.resolve()))
    space = default_space(data.spaces)
    method, colour = data.best_method(space), data.colour_attributes[0]
    rng = np.random.default_rng(0)

    def build() -> None:
        explorer_page(store).server_doc(Document())

    def pan() -> None:
        width = rng.uniform(0.3, 2.1)
        cx, cy = rng.uniform(-0.6, 0.6, 2)
        render_map(data, MapRequest(str(space), method, colour, (cx - width / 2, cx + width / 2),
                                    (cy - width * 0.375, cy + width * 0.375), 800, 600))

    timings = {}
    for measure, action in zip(MEASURES, (build, pan), strict=True):
        action()
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            action()
            times.append((time.perf_counter() - began) * 1000)
        timings[measure] = statistics.median(times)
    return timings


def in_process(store: Path, allocator: str, repeats: int) -> dict[str, float]:
    """`session_work` in a new Python process started with `allocator`."""
    environment = {**os.environ, **ALLOCATORS[allocator][0]}
    done = subprocess.run([sys.executable, __file__, "--store", str(store), "--repeats",
                           str(repeats), "--child"], env=environment, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def allocator_rows(store: Path, rounds: int, repeats: int) -> list[Row]:
    from precompute.store import Store

    n = Store.open(store).images_meta()["count"]
    taken: dict[str, list[dict[str, float]]] = {name: [] for name in ALLOCATORS}
    for _ in range(rounds):
        for name in ALLOCATORS:
            taken[name].append(in_process(store, name, repeats))
    rows = []
    for measure in MEASURES:
        median = {name: statistics.median(t[measure] for t in runs)
                  for name, runs in taken.items()}
        rows += [row(f"{measure}{ALLOCATORS[name][1] or ', pymalloc'}", n, None, value, "ms")
                 for name, value in median.items()]
        rows.append(row(f"{measure}: glibc malloc / pymalloc", n, None,
                        median["glibc"] / median["pymalloc"], "ratio"))
    return rows


def main() -> None:
    from bench.run import RESULTS, print_table, save_rows

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=REPO / "sample_data" / "store")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(session_work(args.store, args.repeats)))
        return
    rows = allocator_rows(args.store, args.rounds, args.repeats)
    print_table(rows)
    save_rows(rows)
    print(f"→ {RESULTS}")


if __name__ == "__main__":
    main()
