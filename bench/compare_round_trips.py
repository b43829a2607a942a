"""The browser round trips of several commits on the same store, taken in turn so that a
machine whose speed drifts slows every commit alike:

    python bench/compare_round_trips.py --store bench/stores/1000000x512 HEAD~3 HEAD
    python bench/compare_round_trips.py --rounds 8 --settle 45 f0b739e WORKTREE

Each commit is checked out with `git worktree` into a temporary folder and served by its own
`panel serve`; WORKTREE is this checkout as it is. Each round opens a page on every server in
turn and times, in the page, its first coloured map, HOVERS hovers (pointer → card shown) and a
lasso (release → count shown). Prints per commit the median and best first paint, the median
time to the HTML's first byte and to DOMContentLoaded, the hovers' median and p95 and the
lassos' median.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.browser_measures import hover_times, lasso_times, open_and_paint  # noqa: E402
from bench.measures import p95  # noqa: E402
from tests.browser.server import chromium, panel_server  # noqa: E402

WORKTREE = "WORKTREE"
HOVERS = 10  # per page
LASSOS = 2  # per page


@contextlib.contextmanager
def checkout(revision: str, folder: Path):
    """The code of `revision` in a worktree under `folder` (this checkout for WORKTREE)."""
    if revision == WORKTREE:
        yield REPO
        return
    path = folder / revision.replace("/", "_").replace("~", "_")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(path),
                    revision], check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                       check=False, capture_output=True)


def navigation_times(page) -> tuple[float, float]:
    """Milliseconds to the HTML's first byte and to the end of DOMContentLoaded."""
    timing = json.loads(page.evaluate(
        "JSON.stringify(performance.getEntriesByType('navigation')[0])"))
    return timing["responseStart"], timing["domContentLoadedEventEnd"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+", help=f"commits, or {WORKTREE}")
    parser.add_argument("--store", type=Path, default=REPO / "bench/stores/1000000x512")
    parser.add_argument("--rounds", type=int, default=8, help="page loads per commit")
    parser.add_argument("--settle", type=float, default=45,
                        help="seconds to let every server finish its warm-up before measuring")
    args = parser.parse_args()
    store = args.store.resolve()
    loads: dict[str, list[tuple[float, float, float]]] = {r: [] for r in args.revisions}
    hovers: dict[str, list[float]] = {r: [] for r in args.revisions}
    lassos: dict[str, list[float]] = {r: [] for r in args.revisions}
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        urls = {}
        for revision in args.revisions:
            code = stack.enter_context(checkout(revision, Path(folder)))
            urls[revision] = stack.enter_context(panel_server(store, repo=code))
        browser = stack.enter_context(chromium())
        time.sleep(args.settle)
        for url in urls.values():  # a first load per server, not counted
            open_and_paint(browser, url, store)[0].page.close()
        for _ in range(args.rounds):
            for revision, url in urls.items():
                explorer, paint = open_and_paint(browser, url, store)
                loads[revision].append((paint, *navigation_times(explorer.page)))
                hovers[revision] += hover_times(explorer, HOVERS)
                lassos[revision] += lasso_times(explorer, LASSOS)
                explorer.page.close()
    print(f"{'revision':<16} {'first paint':>12} {'best':>8} {'first byte':>11} {'DOM ready':>10}"
          f" {'hover':>8} {'hover p95':>10} {'lasso':>8}")
    for revision, times in loads.items():
        paint, first_byte, ready = (statistics.median(t[i] for t in times) for i in range(3))
        print(f"{revision:<16} {paint:>9.0f} ms {min(t[0] for t in times):>5.0f} ms "
              f"{first_byte:>8.0f} ms {ready:>7.0f} ms "
              f"{statistics.median(hovers[revision]):>5.0f} ms {p95(hovers[revision]):>7.0f} ms "
              f"{statistics.median(lassos[revision]):>5.0f} ms")


if __name__ == "__main__":
    main()
