"""HoloViews plot hooks shared by the page's plots."""

from __future__ import annotations

from typing import Any


def page_scrolls_over(plot: Any, _element: Any) -> None:
    """Let the mouse wheel scroll the page over a plot: its wheel-zoom tool stays in the
    toolbar, but zooms only once the user turns it on (Bokeh turns the first scroll tool on
    by itself unless told not to)."""
    plot.state.toolbar.active_scroll = None
