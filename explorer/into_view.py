"""Bring a result into view: a click's neighbours appear where the user is looking, whether the
side panel is beside the map (its own scroll) or below it (the page's scroll)."""

from __future__ import annotations

import param
from panel.reactive import ReactiveHTML

BAND_PX = 180  # the height kept in view: a row of neighbour tiles with their buttons
BAND_CSS = ":host { overflow: visible; pointer-events: none; } .fse-into-view { height: 0; }"
SCROLL_MS = 1_000  # a smooth scroll's longest run in Chromium, with room to spare


class IntoView(ReactiveHTML):
    """An invisible band over the first `BAND_PX` pixels of what follows it in a column; `show()`
    scrolls the page and every scrolling panel around it just enough to bring the band into
    view (nothing moves when it is in view already), or, with `block="start"`, until the band
    is at their top. The band has its height only while it scrolls, so an empty panel below it
    has nothing to scroll."""

    shown = param.Integer(default=0, doc="counts the calls of show(); each change scrolls")
    block = param.Selector(default="nearest", objects=["nearest", "start"], constant=True,
                           doc="where the band comes to rest: in view, or at the top")

    _template = "<div id='band' class='fse-into-view'></div>"
    _scripts = {
        # after the results' own update has laid them out
        "shown": f"""setTimeout(() => {{
            band.style.height = '{BAND_PX}px';
            band.scrollIntoView({{block: data.block, behavior: 'smooth'}});
            clearTimeout(band.fseReset);  // a click during the last scroll extends it
            band.fseReset = setTimeout(() => {{ band.style.height = '0'; }}, {SCROLL_MS});
        }}, 300)""",
    }

    def __init__(self, **params):
        super().__init__(sizing_mode="stretch_width", height=0, margin=0,
                         stylesheets=[BAND_CSS], **params)

    def show(self) -> None:
        """Scroll the band into view in the browser."""
        self.shown += 1
