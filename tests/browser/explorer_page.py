"""Drive the explorer like a person: find where an image sits on the screen, hover, click,
lasso, and read what the page shows."""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Callable

import numpy as np
from PIL import Image

from explorer.data import load_explorer_data
from explorer.page import default_space, method_label
from precompute.store import SpaceKey

# The Bokeh plot views of the map of the class given, in document order (the compare view's
# second map has `fse-map-b` too): a JavaScript function the scripts below call.
MAP_PLOTS_JS = """(mapClass) => {
  const inMap = (element) => {
    for (let node = element; node; node = node.parentNode || node.host) {
      if (node.classList?.contains(mapClass)) return true;
    }
    return false;
  };
  const views = [];
  const visit = (view) => {
    const type = view?.model ? view.model.type : "";
    if ((type === "Plot" || type === "Figure") && inMap(view.el)) views.push(view);
    for (const child of (view?.child_views ?? [])) visit(child);
  };
  for (const root of Object.values(window.Bokeh.index)) visit(root);
  return views;
}"""

# Where a map's plot frame is on the page, and the data range it shows (Bokeh's own views):
# the first plot of the map of the class given (null: none yet).
FRAME_JS = f"""(mapClass = "fse-map") => {{
  const view = ({MAP_PLOTS_JS})(mapClass)[0];
  if (!view) return null;
  const box = view.frame.bbox, canvas = view.canvas_view.el.getBoundingClientRect();
  return {{left: canvas.left + box.x0, top: canvas.top + box.y0, width: box.width,
          height: box.height, x0: view.frame.x_range.start, x1: view.frame.x_range.end,
          y0: view.frame.y_range.start, y1: view.frame.y_range.end}};
}}"""

# Where the hover ring of the map of the class given is drawn, in map coordinates (null: none).
RING_JS = f"""(mapClass) => {{
  for (const view of ({MAP_PLOTS_JS})(mapClass)) {{
    for (const renderer of view.model.renderers) {{
      if (renderer.name === "fse-hover-ring") {{
        const data = renderer.data_source.data;
        return data.x.length ? [data.x[0], data.y[0]] : null;
      }}
    }}
  }}
  return null;
}}"""


# Installed before a page loads: every 25 ms, until it finds one, it looks for a canvas inside
# the map (through the shadow roots) holding over 500 coloured pixels, and keeps the time of
# that frame, in ms since navigation began, in window.fseMapPainted. It runs in the page, so
# measuring a first paint costs the page no screenshots and no round trips.
MAP_PAINT_WATCH_JS = """(() => {
  const colouredCanvas = () => {
    const canvases = [];
    const walk = (node, inMap) => {
      if (node.shadowRoot) walk(node.shadowRoot, inMap);
      for (const child of node.children ?? []) {
        const here = inMap || child.classList?.contains("fse-map");
        if (here && child.tagName === "CANVAS") canvases.push(child);
        walk(child, here);
      }
    };
    walk(document.body, false);
    return canvases.some((canvas) => {
      const context = canvas.width && canvas.height ? canvas.getContext("2d") : null;
      if (!context) return false;
      const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const stride = 7;  // every 7th pixel, so 500 coloured pixels count as 500 / 7
      let coloured = 0;
      for (let i = 0; i < data.length; i += 4 * stride) {
        const r = data[i], g = data[i + 1], b = data[i + 2];
        if (Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
      }
      return coloured * stride > 500;
    });
  };
  const watch = setInterval(() => {
    if (document.body && colouredCanvas()) {
      window.fseMapPainted = performance.now();
      clearInterval(watch);
    }
  }, 25);
})()"""


# Arms a watch for one round trip: from the next `trigger` event (its own timestamp) to the
# first frame that shows the element matched by `parts` with a new `attribute` (its text when
# null). `parts` are selectors, each inside the shadow roots of the one before (Panel renders
# each pane into a shadow root). The result, in ms, lands in window.fseRoundTrip.ms. The page
# reads it once per frame (requestAnimationFrame) and only until it changes, so a measure costs
# no screenshots, no round trips to Playwright, and reads exactly when the browser paints.
ROUND_TRIP_JS = """([trigger, parts, attribute]) => {
  const within = (node, selector) => {
    const found = node.querySelector?.(selector);
    if (found) return found;
    for (const host of [node, ...(node.querySelectorAll?.("*") ?? [])]) {
      const deeper = host.shadowRoot && within(host.shadowRoot, selector);
      if (deeper) return deeper;
    }
    return null;
  };
  const read = () => {
    let node = document;
    for (const selector of parts) {
      node = within(node, selector);
      if (!node) return null;
    }
    return attribute ? node.getAttribute(attribute) : node.textContent;
  };
  const trip = window.fseRoundTrip = {before: read()};
  const watch = () => {
    if (window.fseRoundTrip !== trip) return;  // a later measure took over
    const now = read();
    if (now !== null && now !== trip.before) trip.ms = performance.now() - trip.began;
    else requestAnimationFrame(watch);
  };
  window.addEventListener(trigger, (event) => {
    if (window.fseRoundTrip !== trip) return;
    trip.began = event.timeStamp;
    requestAnimationFrame(watch);
  }, {capture: true, once: true});
}"""


def round_trip(page, act: Callable[[], None], trigger: str, parts: list[str],
               attribute: str | None = None, timeout: float = 10_000) -> float:
    """Milliseconds from the `trigger` event that `act` causes on `page` to the first frame
    showing a new value of what `parts` and `attribute` pick (ROUND_TRIP_JS)."""
    page.evaluate(ROUND_TRIP_JS, [trigger, parts, attribute])
    act()
    found = page.wait_for_function(
        "() => 'ms' in window.fseRoundTrip && [window.fseRoundTrip.ms]", timeout=timeout)
    return found.json_value()[0]


class ExplorerPage:
    """A Playwright page on the explorer for the store at `store`."""

    def __init__(self, page, url: str, store):
        self.page, self.url = page, url
        self.map_class = "fse-map"  # which map the gestures and readings are on
        self.data = load_explorer_data(str(store.resolve()))
        space = default_space(self.data.spaces)  # where a session opens: its map that keeps
        self.space, self.method = str(space), self.data.best_method(space)  # most neighbours

    # ------------------------------------------------------------------ navigation
    def open(self, query: str = "") -> ExplorerPage:
        self.page.goto(self.url + query, wait_until="networkidle")
        self.page.locator(".fse-legend-value").first.wait_for()
        self.page.locator(".fse-map canvas").first.wait_for(state="visible")
        self.page.wait_for_function(f"() => window.Bokeh !== undefined && ({FRAME_JS})() !== null")
        self.page.wait_for_timeout(1_000)  # the first render arrives after the plot exists
        return self

    def open_timing_paint(self) -> float:
        """Open the page and wait for the map's first coloured frame; milliseconds from the
        start of navigation to that frame, as the page's own clock saw it."""
        self.page.add_init_script(MAP_PAINT_WATCH_JS)
        self.page.goto(self.url)
        return self.page.wait_for_function("() => window.fseMapPainted").json_value()

    def coords(self) -> np.ndarray:
        """Map coordinates of every image in the current projection."""
        return self.data.coords(SpaceKey.parse(self.space), self.method)

    def frame(self) -> dict:
        return self.page.evaluate(FRAME_JS, self.map_class)

    def second_map(self, space: str, method: str) -> ExplorerPage:
        """The same page, its gestures and readings on the compare view's second map, which
        shows `method` of `space`."""
        second = copy.copy(self)
        second.map_class, second.space, second.method = "fse-map-b", space, method
        return second

    def ring(self) -> tuple[float, float] | None:
        """Where this map's hover ring is, in map coordinates."""
        found = self.page.evaluate(RING_JS, self.map_class)
        return None if found is None else tuple(found)

    def to_screen(self, x: float, y: float) -> tuple[float, float]:
        f = self.frame()
        return (
            f["left"] + (x - f["x0"]) / (f["x1"] - f["x0"]) * f["width"],
            f["top"] + (f["y1"] - y) / (f["y1"] - f["y0"]) * f["height"],
        )

    def to_data(self, sx: float, sy: float) -> tuple[float, float]:
        f = self.frame()
        return (
            f["x0"] + (sx - f["left"]) / f["width"] * (f["x1"] - f["x0"]),
            f["y1"] - (sy - f["top"]) / f["height"] * (f["y1"] - f["y0"]),
        )

    def screen_of(self, row: int) -> tuple[float, float]:
        x, y = self.coords()[row]
        return self.to_screen(float(x), float(y))

    # ------------------------------------------------------------------ gestures
    def hover(self, row: int) -> None:
        sx, sy = self.screen_of(row)
        self.page.mouse.move(sx - 30, sy - 30)
        self.page.mouse.move(sx, sy, steps=6)

    def click(self, row: int) -> None:
        self.page.mouse.click(*self.screen_of(row))

    def tool(self, title: str) -> None:
        """Activate a map tool by its toolbar title, e.g. 'Lasso Select', 'Box Select'."""
        self.page.locator(f".{self.map_class} [title='{title}']").first.click()

    def lasso(self, vertices: list[tuple[float, float]]) -> None:
        """Draw a lasso through screen points (closed back to the first)."""
        self.tool("Lasso Select")
        self.page.mouse.move(*vertices[0])
        self.page.mouse.down()
        for vertex in [*vertices[1:], vertices[0]]:
            self.page.mouse.move(*vertex, steps=12)
        self.page.mouse.up()

    def drag_box(self, corner: tuple[float, float], opposite: tuple[float, float]) -> None:
        self.tool("Box Select")
        self.page.mouse.move(*corner)
        self.page.mouse.down()
        self.page.mouse.move(*opposite, steps=12)
        self.page.mouse.up()

    def choose_method(self, method: str) -> None:
        """Show the current space's map by `method`, chosen by its label in the selector."""
        space = SpaceKey.parse(self.space)
        self.choose("fse-method", label=method_label(method, self.data.trust[space, method]))

    def choose(self, css_class: str, value: str | None = None, label: str | None = None) -> None:
        select = self.page.locator(f".{css_class} select")
        if label is not None:
            select.select_option(label=label)
        else:
            select.select_option(value)

    # ------------------------------------------------------------------ reading
    def selected_count(self, timeout: float = 20_000) -> int:
        """The count in the Selection tab's header, whether that tab is open or not (a
        selection made from another tab is counted there too)."""
        header = self.page.locator(".fse-selection-header b")
        header.wait_for(state="attached", timeout=timeout)
        return int(header.text_content().replace(",", ""))

    def rows_of(self, selector: str) -> list[int]:
        """`data-row` of every element matching `selector` (cards and tiles carry it)."""
        elements = self.page.locator(selector)
        return [int(elements.nth(i).get_attribute("data-row")) for i in range(elements.count())]

    def map_pixels(self) -> np.ndarray:
        return map_pixels(self.page, self.map_class)

    def match_count(self) -> int:
        text = self.page.locator(".fse-match").inner_text()
        return int(re.search(r"([\d,]+)", text).group(1).replace(",", ""))


def map_pixels(page, map_class: str = "fse-map") -> np.ndarray:
    """The map (of the class given) as an RGB array, as the browser shows it."""
    png = page.locator(f".{map_class} canvas").first.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def points_inside(vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Even-odd rule, point by point: the reference the lasso's result is checked against."""
    inside = np.zeros(len(points), dtype=bool)
    for i, (px, py) in enumerate(points):
        crossings = 0
        for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
            if (y0 > py) != (y1 > py) and px < x0 + (py - y0) * (x1 - x0) / (y1 - y0):
                crossings += 1
        inside[i] = crossings % 2 == 1
    return inside


def distance_to_edges(vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Each point's distance to the polygon's outline (to keep test lassos off the points)."""
    best = np.full(len(points), np.inf)
    for a, b in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        ab = b - a
        t = np.clip(((points - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return best
