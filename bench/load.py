"""Twenty users at once: browser sessions opened together against one `panel serve` on
127.0.0.1, each loading the page, changing the colour, panning and hovering over known points.

    python bench/load.py --store sample_data/store [--sessions 20] [--busy 2]
        [--allocators pymalloc glibc]

Counts page errors and server tracebacks (session close included), hover cards shown, the time
until the last session shows its map, and the server's memory before, at the peak and a minute
after every session has closed, with what glibc's allocator says it holds then (in use, and
free in its heaps; the server logs both a few seconds after sessions close). `--busy N` keeps N
processes spinning on the CPU meanwhile (a loaded machine). Bounded: a fixed number of sessions
and actions, each with a time limit; it stops by itself. `--allocators` runs the whole load once
per memory allocator of the server, in turn: Python's own (pymalloc, the default) and glibc's
for every object, as `make demo` starts the server (docs/benchmarks.md, *Twenty users at once*;
what glibc's costs in speed: bench/allocator_cost.py). Rows go to bench/results.json through
bench/run.py's format.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.browser_measures import rss_mb  # noqa: E402
from bench.measures import Row, row  # noqa: E402
from tests.browser.explorer_page import FRAME_JS  # noqa: E402
from tests.browser.server import CHROMIUM, CHROMIUM_ARGS, panel_server  # noqa: E402

ACTION_TIMEOUT_MS = 120_000
HOVERS = 3  # known points each session hovers over
SETTLE_AFTER_CLOSE_S = 60
# The server's memory allocator: its environment, and what the rows' names add.
ALLOCATORS = {"pymalloc": ({}, ""),
              "glibc": ({"PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2"}, ", glibc malloc"),
              # a fixed mmap threshold: blocks of 128 KiB and more are mapped on their own and
              # unmapped when freed, instead of glibc raising the threshold as large blocks
              # are freed and serving them from its heaps
              "glibc-mmap": ({"PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2",
                              "MALLOC_MMAP_THRESHOLD_": "131072"},
                             ", glibc malloc, mmap from 128 KiB")}


HEAP_LINE = re.compile(r"(\d+) session\(s\) closed since the last release; memory released: "
                       r"([\d.]+) MiB in use, ([\d.]+) MiB free")


def heap_figures(log: Path, closed: int) -> tuple[float, float] | None:
    """glibc's MiB in use and free after the release that followed the last session closed
    (explorer/server_safety.py logs them), once the server's releases have covered `closed`
    sessions; None before that, or where glibc does not report them."""
    found = HEAP_LINE.findall(log.read_text(errors="replace"))
    covered = sum(int(count) for count, _, _ in found)
    return (float(found[-1][1]), float(found[-1][2])) if found and covered >= closed else None


def known_points(store: Path, count: int) -> np.ndarray:
    """Map coordinates of `count` images near the middle of the map a session opens on."""
    from explorer.data import load_explorer_data
    from explorer.page import default_space

    data = load_explorer_data(str(store.resolve()))
    space = default_space(data.spaces)
    coords = data.coords(space, data.best_method(space))  # as a session opens
    central = np.flatnonzero(np.hypot(coords[:, 0], coords[:, 1]) < 0.5)
    return coords[np.random.default_rng(0).choice(central, count, replace=False)]


async def one_session(browser, url: str, points: np.ndarray, began: float) -> dict:
    """One user: load, colour by the second attribute, pan, hover over `points`."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{exc}\n{exc.stack}"))
    result = {"errors": errors, "failure": None, "map_s": None, "cards": 0}
    try:
        await page.goto(url)
        await page.locator(".fse-legend-value").first.wait_for()
        await page.wait_for_function(f"() => window.Bokeh !== undefined && ({FRAME_JS})()")
        result["map_s"] = time.perf_counter() - began
        legend = page.locator(".fse-legend").first
        before = await legend.inner_text()
        select = page.locator(".fse-color-by select").first
        current = await select.input_value()
        values = await page.locator(".fse-color-by select option").evaluate_all(
            "options => options.map(o => o.value)")
        await select.select_option(next(v for v in values if v != current))
        deadline = time.perf_counter() + ACTION_TIMEOUT_MS / 1000
        while await legend.inner_text() == before and time.perf_counter() < deadline:
            await page.wait_for_timeout(50)
        frame = await map_frame(page)
        cx, cy = frame["left"] + frame["width"] / 2, frame["top"] + frame["height"] / 2
        await page.mouse.move(cx, cy)
        await page.mouse.down()
        await page.mouse.move(cx + 30, cy + 20, steps=5)
        await page.mouse.up()
        await page.wait_for_timeout(500)
        card = page.locator(".fse-hover .fse-card")
        for x, y in points.tolist():  # plain floats: Playwright refuses numpy's
            frame = await map_frame(page)
            sx = frame["left"] + (x - frame["x0"]) / (frame["x1"] - frame["x0"]) * frame["width"]
            sy = frame["top"] + (frame["y1"] - y) / (frame["y1"] - frame["y0"]) * frame["height"]
            shown = await card_row(card)
            await page.mouse.move(sx - 20, sy - 20)
            await page.mouse.move(sx, sy, steps=4)
            deadline = time.perf_counter() + 30
            while time.perf_counter() < deadline:
                if await card_row(card) not in (None, shown):
                    result["cards"] += 1
                    break
                await page.wait_for_timeout(50)
    except Exception as exc:  # a session that did not get through (a time limit passed)
        result["failure"] = f"{type(exc).__name__}: {exc}"
    finally:
        await context.close()
    return result


async def card_row(card) -> str | None:
    """The row of the hover card shown, if any, read at once: a card re-rendered between a
    count and a read would leave a waiting read with nothing to find (120 s lost)."""
    return await card.evaluate_all("cards => cards.length ? cards[0].dataset.row : null")


async def map_frame(page) -> dict:
    """The map's plot frame on the screen and its ranges, once the map has one (a colour
    change re-renders the plot, which has none for a moment)."""
    return await (await page.wait_for_function(f"() => ({FRAME_JS})()")).json_value()


def spin(seconds: float) -> None:
    """Keep one core busy for `seconds` (a loaded machine)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def all_sessions(url: str, sessions: int, points: np.ndarray) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        began = time.perf_counter()
        results = await asyncio.gather(*(
            one_session(browser, url, points[i * HOVERS:(i + 1) * HOVERS], began)
            for i in range(sessions)))
        await browser.close()
    return results


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time used so far by these processes (Linux)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def browser_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and b"chromium" in _read(p / "cmdline")]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def server_tracebacks(log: Path) -> int:
    text = log.read_text(errors="replace")
    return text.count("Traceback") + text.count("Uncaught exception")


def load_measures(store: Path, sessions: int = 20, busy: int = 0, allocator: str = "pymalloc"
                  ) -> list[Row]:
    """The load figures on one store; `busy` spinning processes load the machine meanwhile;
    the server allocates its memory with `allocator` (one of ALLOCATORS)."""
    from precompute.store import Store

    environment, named = ALLOCATORS[allocator]
    label = f"{sessions} sessions at once" + (f", {busy} busy cores" if busy else "") + named
    n = Store.open(store).images_meta()["count"]
    points = known_points(store, sessions * HOVERS)
    with panel_server(store, env=environment) as url:
        url.wait_until_warm()
        cold = rss_mb(url.pid)
        # One session first: what the first visitor loads once per process (modules imported
        # on first use, shared caches) is not memory the twenty leave behind.
        asyncio.run(all_sessions(url, 1, points))
        time.sleep(SETTLE_AFTER_CLOSE_S)
        before = rss_mb(url.pid)
        before_own = rss_mb(url.pid, "RssAnon")
        heap_before = heap_figures(url.log, 1)
        spinners = [multiprocessing.Process(target=spin, args=(600,)) for _ in range(busy)]
        for spinner in spinners:
            spinner.start()
        server_cpu = cpu_seconds([url.pid])
        browsers: dict[int, float] = {}  # chromium pid → CPU seconds, read while it lives
        watching = True

        def watch_browsers() -> None:
            while watching:
                for pid in browser_pids():
                    browsers[pid] = cpu_seconds([pid])
                time.sleep(0.5)

        watcher = threading.Thread(target=watch_browsers, daemon=True)
        watcher.start()
        began = time.perf_counter()
        try:
            results = asyncio.run(all_sessions(url, sessions, points))
        finally:
            watching = False
            watcher.join()
            wall = time.perf_counter() - began
            server_cpu = cpu_seconds([url.pid]) - server_cpu
            for spinner in spinners:
                spinner.terminate()
        peak = rss_mb(url.pid)
        time.sleep(SETTLE_AFTER_CLOSE_S)
        after = rss_mb(url.pid)
        after_own = rss_mb(url.pid, "RssAnon")
        heap_after = heap_figures(url.log, 1 + sessions)
        tracebacks = server_tracebacks(url.log)
    errors = [e for r in results for e in r["errors"]]
    failures = [r["failure"] for r in results if r["failure"]]
    for problem in [*errors, *failures][:3]:
        print("page error or failed session:", problem[:1500])
    maps = [r["map_s"] for r in results if r["map_s"] is not None]
    rows = [
        row(f"{label}: page errors", n, None, len(errors), "count", 0),
        row(f"{label}: sessions that did not get through", n, None, len(failures), "count", 0),
        row(f"{label}: server tracebacks", n, None, tracebacks, "count", 0),
        row(f"{label}: hover cards shown", n, None, sum(r["cards"] for r in results),
            f"of {sessions * HOVERS}", sessions * HOVERS, lower_is_better=False),
        row(f"{label}: maps shown", n, None, len(maps), f"of {sessions}", sessions,
            lower_is_better=False),
        row(f"{label}: time until the last map shows", n, None,
            max(maps) if maps else float("nan"), "s"),
        row(f"{label}: server CPU during the load", n, None, server_cpu, "s"),
        row(f"{label}: browsers' CPU during the load", n, None, sum(browsers.values()), "s"),
        row(f"{label}: wall time of the load", n, None, wall, "s"),
        row(f"{label}: server memory before any session", n, None, cold, "MiB"),
        row(f"{label}: server memory after one session, before the load", n, None, before,
            "MiB"),
        row(f"{label}: server memory at the peak", n, None, peak, "MiB"),
        row(f"{label}: server memory {SETTLE_AFTER_CLOSE_S} s after close / before", n, None,
            after / before, "ratio", 1.1),
        row(f"{label}: server's own memory (RssAnon) after one session, before the load", n,
            None, before_own, "MiB"),
        row(f"{label}: server's own memory (RssAnon) {SETTLE_AFTER_CLOSE_S} s after close",
            n, None, after_own, "MiB"),
    ]
    # glibc's figures: all of the server's memory with PYTHONMALLOC=malloc, not pymalloc's arenas
    if heap_before and heap_after and environment.get("PYTHONMALLOC") == "malloc":
        rows += [
            row(f"{label}: allocator's memory in use {SETTLE_AFTER_CLOSE_S} s after close / "
                "before", n, None, heap_after[0] / heap_before[0], "ratio"),
            row(f"{label}: free in the allocator's heaps after one session, before the load",
                n, None, heap_before[1], "MiB"),
            row(f"{label}: free in the allocator's heaps {SETTLE_AFTER_CLOSE_S} s after close",
                n, None, heap_after[1], "MiB"),
        ]
    return rows


def upload_measures(store: Path, image: Path, hovers: int = 12) -> list[Row]:
    """Another session's hover → card while one session's upload is analysed (the first upload
    of a server process also loads the model), against the same session's hovers before."""
    from playwright.sync_api import sync_playwright

    from bench.browser_measures import hover_times
    from bench.measures import p95
    from precompute.store import Store
    from tests.browser.explorer_page import ExplorerPage

    n = Store.open(store).images_meta()["count"]
    with panel_server(store) as url, sync_playwright() as playwright:
        url.wait_until_warm()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        uploader, hoverer = (ExplorerPage(browser.new_page(viewport={"width": 1400,
                                                                     "height": 900}),
                                          url, store).open() for _ in range(2))
        quiet = hover_times(hoverer, hovers)
        uploader.page.get_by_text("Query an image").click()
        uploader.page.locator(".fse-upload input[type=file]").set_input_files(str(image))
        began = time.perf_counter()
        during = hover_times(hoverer, hovers)
        hovered = time.perf_counter() - began
        uploader.page.locator(".fse-query-card").wait_for(timeout=ACTION_TIMEOUT_MS)
        analysed = time.perf_counter() - began
        browser.close()
    print(f"upload analysed in {analysed:.1f} s; the {hovers} hovers during it took "
          f"{hovered:.1f} s")
    return [
        row("hover to card shown, another session idle (browser)", n, None, p95(quiet),
            "ms p95"),
        row("hover to card shown while another session's upload is analysed (browser)", n,
            None, p95(during), "ms p95"),
        row("first upload analysed, model loaded (browser)", n, None, analysed, "s"),
    ]


def main() -> None:
    from bench.run import RESULTS, print_table, save_rows

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=REPO / "sample_data" / "store")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--busy", type=int, default=0)
    parser.add_argument("--allocators", nargs="+", choices=sorted(ALLOCATORS),
                        default=["pymalloc"], help="the server's memory allocators, run in turn")
    parser.add_argument("--upload", type=Path,
                        help="also measure hovers while this image is uploaded and analysed")
    args = parser.parse_args()
    rows = [measured for allocator in args.allocators if args.sessions
            for measured in load_measures(args.store, args.sessions, args.busy, allocator)]
    if args.upload:
        rows += upload_measures(args.store, args.upload)
    print_table(rows)
    save_rows(rows)
    print(f"→ {RESULTS}")


if __name__ == "__main__":
    main()
