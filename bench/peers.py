"""Peers on the same points, in one run: this explorer, a plain HoloViews/Panel app
(bench/peers_holoviews_app.py), Apple's Embedding Atlas and FiftyOne.

    python bench/peers.py                                   # ours vs the plain app at 1M
    python bench/peers.py --sizes 1000000,10000000 --rounds 5 \\
        --atlas /tmp/peers/atlas-venv/bin/embedding-atlas --atlas-sizes 100000,1000000 \\
        --fiftyone /tmp/peers/fo-venv/bin/python --fiftyone-sizes 10000,100000

Each size's points are a synthetic store's (bench/stores/{n}x*: bench/synthetic.py): its map
coordinates (scaled into [-1, 1]), its 20-value `colour` attribute as the category and its
`title` as the text, exported once to bench/stores/peers/{n}.parquet for the other tools. Ours
opens coloured by that category; the plain app shades the same x, y and category.

Ours and the plain app run side by side, taken in turn (ours, plain, ours, plain …, `--rounds`
each; medians; this machine's speed drifts, so the ratios plain/ours are the result): page load
to the first painted map (the page's own clock), a mouse-wheel zoom to the next new map image
in the plot, a lasso's release to the selected count changing, the server's RSS and the page's
JS heap after load. A size at which a tool does not paint within PAINT_LIMIT_S is recorded as
such, and the largest size each painted is a row of its own.

Embedding Atlas (its own environment; `--atlas` names its executable) serves the same points
as parquet: start to `/data/metadata.json` answering, page load to its table shown, and two
queries through its DuckDB endpoint. Its map needs WebGPU with shader-f16, which this
machine's Chromium does not offer (SwiftShader): it is reported as not rendering.
FiftyOne (its own environment; `--fiftyone` names its Python) runs bench/peers_fiftyone.py:
`add_samples`, `compute_visualization(points=…)`, `launch_app`; here its App's page load, the
click that opens the embeddings plot until "N points" shows, mouse-wheel zooms in the plot
(the wheel event to the frame after its next WebGL draw call: the plot zooms in the browser)
and lassos in its Select mode (the release to the panel's "N selected" and to the sample grid's
"N samples" changing). A peer whose environment is missing is skipped with one line.

Rows go to bench/results.json, each measure naming its tool ("peers: ours: …", "peers: plain
HoloViews app: …", "peers: plain HoloViews app / ours: …"); docs/benchmarks.md keeps them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.browser_measures import SETTLE_MS, lasso_times, rss_mb  # noqa: E402
from bench.embedding_atlas_export import AtlasServer  # noqa: E402
from bench.measures import Row, row  # noqa: E402
from bench.run import STORES, print_table, save_rows  # noqa: E402
from tests.browser.explorer_page import (  # noqa: E402
    FRAME_JS,
    MAP_PAINT_WATCH_JS,
    MAP_PLOTS_JS,
    ExplorerPage,
)
from tests.browser.server import ARTIFACTS, AppUrl, chromium, free_port, panel_server  # noqa: E402

OURS, PLAIN = "ours", "plain HoloViews app"
ATLAS, FIFTYONE = "Embedding Atlas", "FiftyOne"
PLAIN_APP = REPO / "bench" / "peers_holoviews_app.py"
FIFTYONE_DRIVER = REPO / "bench" / "peers_fiftyone.py"
EXPORTS = STORES / "peers"
CATEGORY, TEXT = "colour", "title"  # the store's 20-value attribute and its text column
PAINT_LIMIT_S = 120  # a tool that paints no map within this long "does not paint" at that size
ZOOMS = 4  # wheel zooms timed per page, in and out in turn
LASSOS = 3  # lassos timed per page
VIEWPORT = {"width": 1400, "height": 900}
# What stops one tool at one size but not the run: a server that does not start, a page that
# does not get there in time.
FAILURES = (RuntimeError, TimeoutError, PlaywrightError)

# Image arrays of the map's plots, so a zoom's round trip ends when the plot holds an image it
# did not hold before (both apps draw the map as a HoloViews RGB: a Bokeh ImageRGBA glyph).
IMAGES_JS = f"""(mapClass) => {{
  const images = [];
  for (const view of ({MAP_PLOTS_JS})(mapClass)) {{
    for (const renderer of view.model.renderers) {{
      const image = renderer.data_source?.data?.image;
      if (image && image.length) images.push(image[0]);
    }}
  }}
  return images;
}}"""
MARK_IMAGES_JS = f"""(mapClass) => {{
  window.peersImages = window.peersImages || ({IMAGES_JS});
  window.peersShown = new Set(window.peersImages(mapClass));
  window.peersWheelAt = null;
  if (!window.peersWheelWatch) {{
    window.addEventListener("wheel", () => {{
      if (window.peersWheelAt === null) window.peersWheelAt = performance.now();
    }}, {{capture: true, passive: true}});
    window.peersWheelWatch = true;
  }}
}}"""
NEW_IMAGE_JS = """(mapClass) => {
  const fresh = window.peersImages(mapClass).some((image) => !window.peersShown.has(image));
  return fresh && window.peersWheelAt !== null ? performance.now() - window.peersWheelAt : null;
}"""


# ------------------------------------------------------------------------------- the points
def store_of_size(rows: int) -> Path | None:
    """The synthetic store of `rows` images under bench/stores/, if one was generated."""
    found = sorted(p for p in STORES.glob(f"{rows}x*") if (p / "store.json").exists()
                   and "layers" not in p.name)
    return found[0] if found else None


def export_points(store: Path) -> Path:
    """x, y (the map's coordinates), category and text of every image of `store`, as parquet
    (written once; the other tools read it)."""
    from explorer.data import load_explorer_data
    from explorer.page import default_space

    data = load_explorer_data(str(store.resolve()))
    out = EXPORTS / f"{len(data)}.parquet"
    if out.exists() and out.stat().st_mtime > (store / "images.parquet").stat().st_mtime:
        return out
    space = default_space(data.spaces)
    xy = data.coords(space, data.best_method(space))
    table = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1],
                          "category": data.column(CATEGORY).astype(str).astype("category"),
                          "text": data.column(TEXT).astype(str)})
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    return out


def first_rows(points: Path, rows: int) -> Path:
    """The first `rows` points of an export, as an export of their own."""
    out = EXPORTS / f"{rows}.parquet"
    if not out.exists() or out.stat().st_mtime < points.stat().st_mtime:
        pd.read_parquet(points).head(rows).to_parquet(out, index=False)
    return out


def points_for(rows: int, sizes: list[int]) -> Path | None:
    """The export of `rows` points: that size's store's, else the first rows of a larger one."""
    for size in sorted(s for s in {rows, *sizes} if s >= rows):
        store = store_of_size(size)
        if store is not None:
            points = export_points(store)
            return points if size == rows else first_rows(points, rows)
    return None


# ------------------------------------------------------------------- ours and the plain app
class PlainAppPage:
    """A page on the plain app, with the parts of ExplorerPage that bench/browser_measures'
    `lasso_times` uses (the app's map and count carry the explorer's class names)."""

    def __init__(self, page):
        self.page = page

    def frame(self) -> dict:
        return self.page.evaluate(FRAME_JS, "fse-map")

    def tool(self, title: str) -> None:
        self.page.locator(f".fse-map [title='{title}']").first.click()


@contextlib.contextmanager
def plain_app_server(points: Path, size: tuple[int, int]) -> Iterator[AppUrl]:
    """`panel serve bench/peers_holoviews_app.py` on `points`, its map `size` pixels."""
    port = free_port()
    log = ARTIFACTS / f"peers-plain-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "panel", "serve", str(PLAIN_APP), "--address",
               "127.0.0.1", "--port", str(port), "--args", "--points", str(points),
               "--size", f"{size[0]}x{size[1]}"]
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    url = AppUrl(f"http://127.0.0.1:{port}/{PLAIN_APP.stem}")
    url.pid, url.log = process.pid, log
    try:
        wait_for_http(url, process, 90)
        yield url
    finally:
        stop(process)


def wait_for_http(url: str, process: subprocess.Popen, timeout: float) -> float:
    """Seconds until `url` answers (while `process` runs)."""
    began = time.perf_counter()
    while True:
        try:
            urllib.request.urlopen(url, timeout=30).close()
            return time.perf_counter() - began
        except OSError:
            if process.poll() is not None or time.perf_counter() - began > timeout:
                raise RuntimeError(f"{url} did not answer (exit {process.poll()})") from None
            time.sleep(0.25)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def open_painted(browser, url: str) -> tuple[object, float]:
    """A new page on `url`; milliseconds from navigation to the first coloured map (the
    in-page watch of ExplorerPage), after which the page settles (SETTLE_MS)."""
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(PAINT_LIMIT_S * 1000)
    page.add_init_script(MAP_PAINT_WATCH_JS)
    page.goto(url)
    paint = page.wait_for_function("() => window.fseMapPainted").json_value()
    page.wait_for_function(f"() => window.Bokeh !== undefined && ({FRAME_JS})() !== null")
    page.wait_for_timeout(SETTLE_MS)
    return page, paint


def wheel_times(page, box: dict, arm: Callable[[], object], done_js: str, arg: object = None,
                count: int = ZOOMS) -> list[float]:
    """Milliseconds from a wheel event near the centre of `box` (left, top, width, height)
    until `done_js` returns a number (the time it measured), zooming in and out in turn;
    `arm` readies the page's watch before each wheel event."""
    page.mouse.move(box["left"] + box["width"] * 0.45, box["top"] + box["height"] * 0.55)
    times = []
    for attempt in range(count):
        arm()
        page.mouse.wheel(0, -120 if attempt % 2 == 0 else 100)
        handle = page.wait_for_function(done_js, arg=arg, polling="raf", timeout=30_000)
        times.append(handle.json_value())
        page.wait_for_timeout(500)
    return times


def zoom_times(page, frame: dict) -> list[float]:
    """Milliseconds from a wheel event over the map to the plot holding a new image (the
    server's render of the zoomed view)."""
    return wheel_times(page, frame, lambda: page.evaluate(MARK_IMAGES_JS, "fse-map"),
                       NEW_IMAGE_JS, "fse-map")


def js_heap_mb(page) -> float:
    """The page's used JavaScript heap (Chromium's own metric), in MiB."""
    session = page.context.new_cdp_session(page)
    session.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in session.send("Performance.getMetrics")["metrics"]}
    session.detach()
    return metrics["JSHeapUsedSize"] / 2**20


def measure_page(page, frame_of: Callable[[], dict], lasso: Callable[[], list[float]],
                 server_pid: int, wheel_tool: Callable[[], None]) -> dict[str, float]:
    """Zoom, lasso and memory on an open, painted page."""
    heap, server = js_heap_mb(page), rss_mb(server_pid)
    wheel_tool()
    zooms = zoom_times(page, frame_of())
    return {"zoom": statistics.median(zooms), "lasso": statistics.median(lasso()),
            "server": server, "heap": heap}


def ours_round(browser, url: AppUrl, store: Path) -> dict[str, float]:
    """One page on ours: first paint, zoom, lasso, memory."""
    page, paint = open_painted(browser, url)
    explorer = ExplorerPage(page, url, store)
    try:
        return {"paint": paint, **measure_page(
            page, explorer.frame, lambda: lasso_times(explorer, LASSOS), url.pid,
            lambda: explorer.tool("Wheel Zoom"))}
    finally:
        page.close()


def plain_round(browser, url: AppUrl) -> dict[str, float]:
    """One page on the plain app: first paint, zoom, lasso, memory (its wheel zoom is on)."""
    page, paint = open_painted(browser, url)
    plain = PlainAppPage(page)
    try:
        return {"paint": paint, **measure_page(
            page, plain.frame, lambda: lasso_times(plain, LASSOS), url.pid, lambda: None)}
    finally:
        page.close()


MEASURES = {  # key of a round's readings → (measure, unit)
    "paint": ("page load to first map paint (browser)", "ms"),
    "zoom": ("wheel zoom to new map image (browser)", "ms"),
    "lasso": ("lasso to selected count shown (browser)", "ms"),
    "server": ("server RSS after page load", "MiB"),
    "heap": ("browser JS heap after page load", "MiB"),
}


def ours_vs_plain(store: Path, points: Path, rounds: int) -> tuple[list[Row], dict[str, bool]]:
    """Ours and the plain app on the same points, in turn; rows, and whether each painted.
    The plain app's map gets the size of ours' plot frame."""
    n = len(pd.read_parquet(points, columns=["x"]))
    readings: dict[str, list[dict[str, float]]] = {OURS: [], PLAIN: []}
    with panel_server(store) as served, chromium() as browser:
        served.wait_until_warm()
        ours = with_query(served, f"?color={CATEGORY}")
        frame = warm_frame(browser, ours)
        size = (800, 600) if frame is None else (round(frame["width"]), round(frame["height"]))
        with plain_app_server(points, size) as plain:
            painted = {OURS: frame is not None, PLAIN: warm_frame(browser, plain) is not None}
            if not all(painted.values()):
                return [], painted
            for round_number in range(rounds):
                readings[OURS].append(ours_round(browser, ours, store))
                readings[PLAIN].append(plain_round(browser, plain))
                print(f"  round {round_number + 1}: ours {readings[OURS][-1]}, "
                      f"plain {readings[PLAIN][-1]}", flush=True)
    return comparison_rows(readings, n), painted


def warm_frame(browser, url: str) -> dict | None:
    """Open `url` once (its server's caches fill) and close it; its map's plot frame, or None
    when the map did not paint within PAINT_LIMIT_S."""
    try:
        page, _ = open_painted(browser, url)
    except PlaywrightTimeout:
        return None
    frame = page.evaluate(FRAME_JS, "fse-map")
    page.close()
    return frame


def with_query(url: AppUrl, query: str) -> AppUrl:
    """`url` with a query string, keeping its server's process id and log."""
    queried = AppUrl(url + query)
    queried.pid, queried.log = url.pid, url.log
    return queried


def comparison_rows(readings: dict[str, list[dict[str, float]]], n: int) -> list[Row]:
    """Each tool's median of every measure, and the plain app's to ours."""
    rows = []
    for key, (measure, unit) in MEASURES.items():
        medians = {tool: statistics.median(r[key] for r in readings[tool]) for tool in readings}
        rows.append(row(f"peers: {OURS}: {measure}", n, None, medians[OURS], unit))
        rows.append(row(f"peers: {PLAIN}: {measure}", n, None, medians[PLAIN], unit))
        rows.append(row(f"peers: {PLAIN} / {OURS}: {measure}", n, None,
                        medians[PLAIN] / medians[OURS], "ratio"))
    return rows


# ------------------------------------------------------------------------- Embedding Atlas
ATLAS_MAP = "does not render: needs WebGPU with shader-f16 (this Chromium offers SwiftShader)"
# Installed before the page loads: the page's clock when its table first holds a cell.
TABLE_WATCH_JS = """(() => {
  const watch = setInterval(() => {
    if (document.querySelector("table tbody tr td")) {
      window.peersTableShown = performance.now();
      clearInterval(watch);
    }
  }, 25);
})()"""
QUERIES = 5  # each query is timed this many times; the median is reported


@contextlib.contextmanager
def atlas_server(atlas: str, points: Path) -> Iterator[tuple[AtlasServer, int]]:
    """Embedding Atlas serving `points` (its coordinates, text and DuckDB on the server);
    yields the server (with the seconds it took to answer) and its process id."""
    port = free_port()
    log = ARTIFACTS / f"peers-atlas-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [atlas, str(points), "--x", "x", "--y", "y", "--text", "text", "--duckdb",
               "server", "--host", "127.0.0.1", "--port", str(port), "--no-auto-port",
               "--no-mcp"]
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        ready = wait_for_http(f"{base}/data/metadata.json", process, 600)
        yield AtlasServer(base, ready), process.pid
    finally:
        stop(process)


def median_ms(action: Callable[[], object], repeats: int = QUERIES) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def atlas_rows(atlas: str, points: Path, n: int, browser) -> list[Row]:
    """Start, page load to the table, two DuckDB queries and memory of Embedding Atlas."""
    with atlas_server(atlas, points) as (server, pid):
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(PAINT_LIMIT_S * 1000)
        page.add_init_script(TABLE_WATCH_JS)
        page.goto(server.base + "/")
        table_ms = page.wait_for_function("() => window.peersTableShown").json_value()
        page.wait_for_timeout(SETTLE_MS)
        heap, server_mb = js_heap_mb(page), rss_mb(pid)
        page.screenshot(path=ARTIFACTS / f"peers-atlas-{n}.png")  # its map's message
        page.close()
        counts = median_ms(lambda: server.sql(
            "SELECT category, count(*) AS n FROM dataset GROUP BY 1"))
        box = median_ms(lambda: server.sql(
            "SELECT count(*) AS n FROM dataset WHERE x BETWEEN -0.3 AND 0.3 "
            "AND y BETWEEN -0.3 AND 0.3"))
    name = f"peers: {ATLAS}"
    print(f"  {ATLAS} at {n:,}: map {ATLAS_MAP}", flush=True)
    return [
        row(f"{name}: start to /data/metadata.json answering", n, None, server.ready_s * 1000,
            "ms"),
        row(f"{name}: page load to table shown (browser)", n, None, table_ms, "ms"),
        row(f"{name}: count by category (its DuckDB server)", n, None, counts, "ms"),
        row(f"{name}: count in an x/y box (its DuckDB server)", n, None, box, "ms"),
        row(f"{name}: server RSS after page load", n, None, server_mb, "MiB"),
        row(f"{name}: browser JS heap after page load", n, None, heap, "MiB"),
    ]


# -------------------------------------------------------------------------------- FiftyOne
FIFTYONE_ENV = {"FIFTYONE_DO_NOT_TRACK": "true", "FIFTYONE_DATABASE_VALIDATION": "false",
                "FIFTYONE_DATABASE_DIR": str(ARTIFACTS.parent / "peers-fiftyone-db")}


def points_npz(points: Path) -> Path:
    """An export as numpy arrays (x, y, category codes and names) for FiftyOne's side."""
    table = pd.read_parquet(points, columns=["x", "y", "category"])
    out = points.with_suffix(".npz")
    np.savez(out, x=table["x"].to_numpy(), y=table["y"].to_numpy(),
             codes=table["category"].cat.codes.to_numpy(),
             names=np.array(table["category"].cat.categories, dtype=str))
    return out


@contextlib.contextmanager
def fiftyone_app(python: str, points: Path) -> Iterator[tuple[dict, str, int]]:
    """bench/peers_fiftyone.py under FiftyOne's Python: its timings (seconds), the App's URL
    and the process id, serving until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [python, str(FIFTYONE_DRIVER), str(points_npz(points)), str(port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, **FIFTYONE_ENV})
    try:
        timings = json_line(process)
        yield timings, f"http://127.0.0.1:{port}/datasets/{timings['dataset']}", process.pid
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop(process)


def json_line(process: subprocess.Popen) -> dict:
    """The first line of `process`'s output that is a JSON object (FiftyOne prints its own
    progress lines too)."""
    for line in process.stdout:
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{FIFTYONE_DRIVER.name} ended (exit {process.wait()})")


def open_embeddings_panel(page, brain_key: str, n: int) -> float:
    """Open the App's embeddings panel on `brain_key`; milliseconds from choosing the key to
    "N points" showing (the clicks of /tmp/peers/REPORT.md: a popover first takes clicks)."""
    page.keyboard.press("Escape")
    page.locator("[data-cy='new-panel-btn']").first.dispatch_event("click")
    page.get_by_text("Embeddings", exact=True).last.dispatch_event("click")
    page.wait_for_timeout(SETTLE_MS)
    page.keyboard.press("Escape")
    began = time.perf_counter()
    page.get_by_text(brain_key, exact=True).first.dispatch_event("click")
    page.get_by_text(f"{n:,} points").first.wait_for()
    return (time.perf_counter() - began) * 1000


# FiftyOne's embeddings plot draws on the client with WebGL2: a zoom ends at the first draw call
# after the wheel event, and a lasso when the panel's "N selected" and the sample grid's
# "N samples" show the new count (the two elements are found once, then read each frame).
FIFTYONE_DRAW_WATCH_JS = """
(() => {
  window.peersWheelAt = null; window.peersDrawAt = null; window.peersFrameAt = null;
  for (const context of [WebGLRenderingContext, WebGL2RenderingContext]) {
    for (const name of ["drawArrays", "drawElements", "drawArraysInstanced",
                        "drawElementsInstanced"]) {
      const draw = context.prototype[name];
      if (!draw) continue;
      context.prototype[name] = function (...args) {
        if (window.peersWheelAt !== null && window.peersDrawAt === null) {
          window.peersDrawAt = performance.now();  // the frame that shows it comes next
          requestAnimationFrame(() => { window.peersFrameAt = performance.now(); });
        }
        return draw.apply(this, args);
      };
    }
  }
  window.addEventListener("wheel", (event) => {
    if (window.peersWheelAt === null) window.peersWheelAt = event.timeStamp;
  }, {capture: true, passive: true});
})();"""
FIFTYONE_COUNTS_JS = """() => {
  // the innermost element whose whole text matches, found again only when React replaced it
  const find = (pattern) => {
    const found = [...document.querySelectorAll("*")]
      .filter((e) => pattern.test(e.textContent.trim()));
    return found.length ? found[found.length - 1] : null;
  };
  const watched = window.peersCounts ??= {};
  const text = (name, pattern) => {
    if (!watched[name]?.isConnected || !pattern.test(watched[name].textContent.trim()))
      watched[name] = find(pattern);
    return watched[name]?.textContent.trim() ?? "";
  };
  return [text("selected", /^[\\d,]+ (selected|points)/), text("samples", /^[\\d,]+ samples$/)];
}"""
FIFTYONE_LASSO_JS = """([selected, samples]) => {
  const counts = """ + FIFTYONE_COUNTS_JS + """;
  window.peersLasso = {};
  window.addEventListener("pointerup", (event) => {
    const times = window.peersLasso;
    const look = () => {
      const [nowSelected, nowSamples] = counts();
      if (!("selected" in times) && nowSelected !== selected)
        times.selected = performance.now() - event.timeStamp;
      if (!("samples" in times) && nowSamples && nowSamples !== samples)
        times.samples = performance.now() - event.timeStamp;
      if (!("selected" in times && "samples" in times)) requestAnimationFrame(look);
    };
    requestAnimationFrame(look);
  }, {capture: true, once: true});
}"""
LASSO_DONE_JS = """() => { const times = window.peersLasso;
  return "selected" in times && "samples" in times ? times : null; }"""


def fiftyone_plot_box(page) -> dict:
    """Where the embeddings plot's canvas (the page's largest) is."""
    return page.evaluate("""() => {
      const largest = [...document.querySelectorAll("canvas")].map((c) => c.getBoundingClientRect())
        .sort((a, b) => b.width * b.height - a.width * a.height)[0];
      return {left: largest.left, top: largest.top, width: largest.width, height: largest.height};
    }""")


def fiftyone_zoom_times(page) -> list[float]:
    """Milliseconds from a wheel event over the embeddings plot to the animation frame after its
    first draw call (the frame that shows the zoomed plot), FIFTYONE_DRAW_WATCH_JS being in
    the page."""
    return wheel_times(
        page, fiftyone_plot_box(page),
        lambda: page.evaluate("() => { window.peersWheelAt = window.peersDrawAt = null;"
                              " window.peersFrameAt = null; }"),
        "() => window.peersFrameAt === null ? null : window.peersFrameAt - window.peersWheelAt")


def fiftyone_lasso_times(page, count: int = LASSOS) -> list[dict[str, float]]:
    """Lassos of 80–160 px in the plot's Select mode: milliseconds from the release to the
    panel's "N selected" and to the sample grid's "N samples" showing the new selection."""
    page.get_by_text("Select", exact=True).first.click()
    box = fiftyone_plot_box(page)
    times = []
    for attempt in range(count):
        half = 40 + 20 * attempt
        cx, cy = box["left"] + box["width"] * 0.5, box["top"] + box["height"] * 0.5
        corners = [(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half),
                   (cx - half, cy + half), (cx - half, cy - half)]
        page.evaluate(FIFTYONE_LASSO_JS, page.evaluate(FIFTYONE_COUNTS_JS))
        page.mouse.move(*corners[0])
        page.mouse.down()
        for corner in corners[1:]:
            page.mouse.move(*corner, steps=5)
        page.mouse.up()
        times.append(page.wait_for_function(LASSO_DONE_JS, polling=100).json_value())
        page.wait_for_timeout(SETTLE_MS)
    return times


def fiftyone_rows(python: str, points: Path, n: int, browser) -> list[Row]:
    """FiftyOne's dataset build, compute_visualization, App load and embeddings panel, then
    wheel zooms and lassos in its plot."""
    with fiftyone_app(python, points) as (timings, url, pid):
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(PAINT_LIMIT_S * 1000)
        page.add_init_script(FIFTYONE_DRAW_WATCH_JS)
        began = time.perf_counter()
        page.goto(url)
        page.get_by_text(timings["dataset"]).first.wait_for(state="attached")
        page.wait_for_timeout(SETTLE_MS)
        load_ms = (time.perf_counter() - began) * 1000 - SETTLE_MS
        panel_ms = open_embeddings_panel(page, timings["brain_key"], n)
        heap, server_mb = js_heap_mb(page), process_tree_rss_mb(pid)
        page.wait_for_timeout(SETTLE_MS)
        page.screenshot(path=ARTIFACTS / f"peers-fiftyone-{n}.png")  # its plot, drawn or not
        zooms = fiftyone_zoom_times(page)
        lassos = fiftyone_lasso_times(page)
        page.screenshot(path=ARTIFACTS / f"peers-fiftyone-{n}-lasso.png")
        page.close()
    name = f"peers: {FIFTYONE}"
    return [
        row(f"{name}: add_samples", n, None, timings["add_samples_s"] * 1000, "ms"),
        row(f"{name}: compute_visualization(points=given)", n, None,
            timings["compute_visualization_s"] * 1000, "ms"),
        row(f"{name}: launch_app", n, None, timings["launch_app_s"] * 1000, "ms"),
        row(f"{name}: page load to dataset shown (browser)", n, None, load_ms, "ms"),
        row(f"{name}: click to embeddings plot's point count shown (browser)", n, None,
            panel_ms, "ms"),
        row(f"{name}: wheel zoom to zoomed plot drawn (browser, its own WebGL)", n, None,
            statistics.median(zooms), "ms"),
        row(f"{name}: lasso released to selected count shown (browser)", n, None,
            statistics.median(t["selected"] for t in lassos), "ms"),
        row(f"{name}: lasso released to sample grid's count shown (browser)", n, None,
            statistics.median(t["samples"] for t in lassos), "ms"),
        row(f"{name}: server RSS (Python, App server, mongod)", n, None, server_mb, "MiB"),
        row(f"{name}: browser JS heap after embeddings plot", n, None, heap, "MiB"),
    ]


def process_tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, in MiB (FiftyOne serves from children)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return rss_mb(pid) + sum(process_tree_rss_mb(int(c)) for c in children.stdout.split())


# ------------------------------------------------------------------------------- the run
def run(sizes: list[int], rounds: int, atlas: str | None, atlas_sizes: list[int],
        fiftyone: str | None, fiftyone_sizes: list[int]) -> list[Row]:
    """Every tool in turn at its sizes; the rows of all."""
    rows: list[Row] = []
    painted: dict[str, list[int]] = {OURS: [], PLAIN: []}
    tried: list[int] = []
    for n in sizes:
        store = store_of_size(n)
        if store is None:
            print(f"no store of {n:,} rows: python bench/synthetic.py --rows {n} --dim 8 "
                  f"--zero-embeddings --no-index --out bench/stores/{n}x8", flush=True)
            continue
        print(f"ours vs {PLAIN} at {n:,} ({store.name})", flush=True)
        try:
            found, paints = ours_vs_plain(store, export_points(store), rounds)
        except FAILURES as error:
            print(f"  stopped at {n:,}: {error}", flush=True)
            continue
        rows += found
        tried.append(n)
        for tool, did in paints.items():
            if did:
                painted[tool].append(n)
    for tool, sizes_painted in painted.items():
        if tried:
            rows.append(row(f"peers: {tool}: largest size painted within {PAINT_LIMIT_S} s",
                            max(tried), None, max(sizes_painted, default=0), "points"))
    rows += peer_rows(ATLAS, atlas, atlas_sizes, sizes, atlas_rows)
    rows += peer_rows(FIFTYONE, fiftyone, fiftyone_sizes, sizes, fiftyone_rows)
    return rows


def peer_rows(tool: str, executable: str | None, peer_sizes: list[int], sizes: list[int],
              measure: Callable[..., list[Row]]) -> list[Row]:
    """A peer's rows at each of its sizes, or none (with one line) when it is not installed."""
    if not executable or not Path(executable).exists():
        print(f"{tool}: skipped (no executable{f' at {executable}' if executable else ''})")
        return []
    rows: list[Row] = []
    with chromium() as browser:
        for n in peer_sizes:
            points = points_for(n, sizes)
            if points is None:
                print(f"{tool} at {n:,}: skipped (no store of {n:,} rows or more)")
                continue
            print(f"{tool} at {n:,}", flush=True)
            try:
                rows += measure(executable, points, n, browser)
            except FAILURES as error:
                print(f"  {tool} stopped at {n:,}: {error}", flush=True)
    return rows


def size_list(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=size_list, default=[1_000_000],
                        help="points of ours vs the plain app (stores bench/stores/{n}x*)")
    parser.add_argument("--rounds", type=int, default=5, help="page loads of each, in turn")
    parser.add_argument("--atlas", help="Embedding Atlas's executable (embedding-atlas)")
    parser.add_argument("--atlas-sizes", type=size_list, default=[100_000, 1_000_000])
    parser.add_argument("--fiftyone", help="the Python of an environment with fiftyone")
    parser.add_argument("--fiftyone-sizes", type=size_list, default=[10_000, 100_000])
    args = parser.parse_args()
    rows = run(args.sizes, args.rounds, args.atlas, args.atlas_sizes, args.fiftyone,
               args.fiftyone_sizes)
    print_table(rows)
    save_rows(rows)


if __name__ == "__main__":
    main()
