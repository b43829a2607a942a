"""Tabs as tall as the open tab, built when first opened, and brought into view when opened."""

from __future__ import annotations

from collections.abc import Callable

import panel as pn
import param

from explorer.into_view import IntoView

# Panel hides a closed tab with `visibility: hidden`, so it keeps its height in the tabs' grid:
# after the Quality tab (2,700 px on the sample store) every tab was that tall. A closed tab
# takes no room instead; its plots are laid out again when it is shown (Bokeh's own tabs do so).
FOLD_CLOSED_CSS = ':host > [aria-hidden="true"] { display: none !important; }'


def folding_tabs(*objects, **params) -> pn.Tabs:
    """`pn.Tabs` whose height is that of the open tab."""
    stylesheets = [FOLD_CLOSED_CSS, *params.pop("stylesheets", [])]
    return pn.Tabs(*objects, stylesheets=stylesheets, **params)


class TabsBuiltWhenOpened(pn.viewable.Viewer):
    """Tabs showing `first`; each of the `later` tabs is built the first time it is opened and
    kept, so the page's first paint carries only what it shows (the Layers and Metrics plots
    take most of a page's build). `opened` hears each tab's name as it opens, before any
    building. A tab opened scrolls the tab bar to the top of the page (below the map, a tab's
    content started under the window's lower edge)."""

    def __init__(self, first: tuple[str, pn.viewable.Viewable],
                 later: dict[str, Callable[[], pn.viewable.Viewable]],
                 opened: Callable[[str], None] = lambda _name: None, **params):
        super().__init__()
        holders = [pn.Column(sizing_mode="stretch_width") for _ in later]
        self.tabs = folding_tabs(first, *zip(later, holders, strict=True), dynamic=False,
                                 **params)
        self._band = IntoView(block="start")
        self._builders = [None, *later.values()]
        self._names = [first[0], *later]
        self._opened = opened
        self.tabs.param.watch(self._build_opened, "active")

    def open(self, name: str) -> None:
        """Open the tab `name` (if it is not open) and bring it into view."""
        index = self._names.index(name)
        if self.tabs.active == index:
            self._band.show()
        self.tabs.active = index

    def _build_opened(self, event: param.parameterized.Event) -> None:
        self._opened(self._names[event.new])
        holder = self.tabs.objects[event.new]
        if self._builders[event.new] is not None and not holder.objects:
            holder.objects = [self._builders[event.new]()]
        self._band.show()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self._band, self.tabs, sizing_mode="stretch_width")
