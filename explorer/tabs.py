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


def tabs_built_when_opened(
    first: tuple[str, pn.viewable.Viewable],
    later: dict[str, Callable[[], pn.viewable.Viewable]],
    opened: Callable[[str], None] = lambda _name: None,
    **params,
) -> pn.Column:
    """Tabs showing `first`; each of the `later` tabs is built the first time it is opened and
    kept, so the page's first paint carries only what it shows (the Layers and Metrics plots
    take most of a page's build). `opened` hears each tab's name as it opens, before any
    building. A tab opened scrolls the tab bar to the top of the page (below the map, a tab's
    content started under the window's lower edge)."""
    holders = [pn.Column(sizing_mode="stretch_width") for _ in later]
    tabs = folding_tabs(first, *zip(later, holders, strict=True), dynamic=False, **params)
    band = IntoView(block="start")
    builders = [None, *later.values()]
    names = [first[0], *later]

    def build_opened(event: param.parameterized.Event) -> None:
        opened(names[event.new])
        holder = tabs.objects[event.new]
        if builders[event.new] is not None and not holder.objects:
            holder.objects = [builders[event.new]()]
        band.show()

    tabs.param.watch(build_opened, "active")
    return pn.Column(band, tabs, sizing_mode="stretch_width")
