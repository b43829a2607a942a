"""The compare view: a second map beside the first, each with its own feature space and
projection selectors, sharing the colouring, filter, isolated values and selection (a lasso in
either selects in both). Hovering a point in either map rings the same image in the other; a
click shows the image's neighbours in both spaces (explorer/neighbours.py)."""

from __future__ import annotations

import panel as pn

from explorer.data import ExplorerData
from explorer.map_panel import NARROW, SECOND_MAP, MapPanel
from explorer.state import ExplorerState
from precompute.store import PENULTIMATE, SpaceKey

# Two maps and the side panel share a row while each map keeps 250 px (so both fit side by
# side from a 900-px window); narrower, the maps stack, each the row's width. Each map is
# square (as its projection's units are), under its selectors. The side panel is as tall as
# what it holds, up to the window's height, so the tabs below follow the maps closely.
COMPARE_COLUMN_CSS = ":host { flex: 1 1 250px; min-width: 250px; }"
COMPARE_MAP_CSS = """
:host { width: 100%; aspect-ratio: 1; max-height: calc(100vh - 210px); min-height: 250px; }
"""
COMPARE_SIDE_CSS = f"""
:host {{ flex: 1 1 240px; max-width: 380px; height: auto; max-height: calc(100vh - 150px); }}
@media {NARROW} {{ :host {{ max-width: none; }} }}
"""


def contrast_space(spaces: list[SpaceKey], shown: SpaceKey) -> SpaceKey:
    """The space the second map opens on: the same backbone's pretrained penultimate layer
    beside a fine-tuned space (what training changed), else a fine-tuned penultimate layer
    beside a pretrained one, else the first other space."""
    others = [s for s in spaces if s != shown]
    if not others:
        return shown
    penultimate = [s for s in others if s.layer == PENULTIMATE]
    if shown.pretrained:
        wanted = [s for s in penultimate if not s.pretrained and s.backbone == shown.backbone]
    else:
        wanted = [s for s in penultimate if s.pretrained and s.backbone == shown.backbone]
    return (wanted or penultimate or others)[0]


def selectors(state: ExplorerState, space: str, method: str, css_class: str) -> pn.Row:
    """One map's Feature space and Projection selectors, side by side above it."""
    return pn.Row(
        pn.widgets.Select.from_param(state.param[space], name="Feature space",
                                     sizing_mode="stretch_width",
                                     css_classes=[f"{css_class}-space"]),
        pn.widgets.Select.from_param(state.param[method], name="Projection",
                                     sizing_mode="stretch_width",
                                     css_classes=[f"{css_class}-method"]),
        sizing_mode="stretch_width",
    )


class MapArea(pn.viewable.Viewer):
    """The maps and the side panel: the first map alone, or with `state.compare` on, both maps
    under their selectors. The second map is built each time compare is turned on and dropped
    when it is turned off, so a session that does not compare renders one map."""

    def __init__(self, data: ExplorerData, state: ExplorerState, first: MapPanel,
                 side: pn.viewable.Viewable):
        super().__init__()
        self.data, self.state, self.first, self.side = data, state, first, side
        self.second: MapPanel | None = None
        self._hover_link = None  # the first map's watcher that rings its hover in the second
        self.box = pn.FlexBox(flex_wrap="wrap", sizing_mode="stretch_width")
        self._single_css = (list(first.pane.stylesheets), list(side.stylesheets))
        state.param.watch(self._arrange, "compare")
        self._arrange()

    def __panel__(self) -> pn.viewable.Viewable:
        return self.box

    def _arrange(self, *_events) -> None:
        if self._hover_link is not None:
            self.first.param.unwatch(self._hover_link)
            self._hover_link = None
        if not self.state.compare:
            self.second = None
            self.first.pane.stylesheets, self.side.stylesheets = self._single_css
            self.box.objects = [self.first, self.side]
            return
        self.second = MapPanel(self.data, self.state, SECOND_MAP)
        self.second.pane.stylesheets = [COMPARE_MAP_CSS]
        self.first.pane.stylesheets = [COMPARE_MAP_CSS]
        self.side.stylesheets = [COMPARE_SIDE_CSS]
        self._hover_link = link_hover(self.first, self.second)
        self.box.objects = [
            pn.Column(selectors(self.state, "space", "method", "fse-compare-a"), self.first,
                      stylesheets=[COMPARE_COLUMN_CSS], css_classes=["fse-compare-a"]),
            pn.Column(selectors(self.state, "space_b", "method_b", "fse-compare-b"),
                      self.second, stylesheets=[COMPARE_COLUMN_CSS],
                      css_classes=["fse-compare-b"]),
            self.side,
        ]


def link_hover(first: MapPanel, second: MapPanel):
    """Ring the image under the cursor of either map in both (the hover card follows the
    first map's `hovered`). Returns the watcher on `first`, to unwatch when `second` goes."""
    second.param.watch(lambda event: setattr(first, "hovered", event.new), "hovered")
    return first.param.watch(lambda event: setattr(second, "hovered", event.new), "hovered")
