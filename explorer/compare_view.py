"""The compare view: a second map beside the first, each with its own feature space and
projection selectors, sharing the colouring, filter, isolated values and selection (a lasso in
either selects in both). Hovering a point in either map rings the same image in the other; a
click shows the image's neighbours in both spaces (explorer/neighbours.py)."""

from __future__ import annotations

import panel as pn
import param

from explorer.data import ExplorerData
from explorer.map_panel import NARROW, SECOND_MAP, MapPanel
from explorer.state import ExplorerState
from precompute.store import PENULTIMATE, SpaceKey

# Two maps and the side panel share a row while each map keeps 250 px (so both fit side by
# side from a 900-px window); narrower, the maps stack, each the row's width. Each map is
# square (as its projection's units are), under its two selectors. The side panel is as tall as
# what it holds, up to the window's height, so the tabs below follow the maps closely.
COMPARE_COLUMN_CSS = ":host { flex: 1 1 250px; min-width: 250px; }"
COMPARE_MAP_CSS = """
:host { width: 100%; aspect-ratio: 1; max-height: calc(100vh - 270px); min-height: 250px; }
"""
# the selectors' text a little smaller than the sidebar's, so that a fine-tuned layer's name
# and a map's trust score fit a 250-px column
COMPARE_SELECT_CSS = "select.bk-input { font-size: 12px; }"
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


def selectors(state: ExplorerState, space: str, method: str, css_class: str) -> pn.Column:
    """One map's Feature space and Projection selectors, one above the other above it, each
    as wide as the map (side by side, four in a row cut the names at any window width)."""
    return pn.Column(
        pn.widgets.Select.from_param(state.param[space], name="Feature space",
                                     sizing_mode="stretch_width",
                                     css_classes=[f"{css_class}-space"],
                                     stylesheets=[COMPARE_SELECT_CSS]),
        pn.widgets.Select.from_param(state.param[method], name="Projection",
                                     sizing_mode="stretch_width",
                                     css_classes=[f"{css_class}-method"],
                                     stylesheets=[COMPARE_SELECT_CSS]),
        sizing_mode="stretch_width",
    )


class MapArea(pn.viewable.Viewer):
    """The maps and the side panel: the first map alone, or with `state.compare` on, both maps
    under their selectors. The second map is built the first time compare is turned on and
    kept when it is turned off (out of the page, it renders nothing), so a session that never
    compares renders one map and one that toggles builds the second once."""

    def __init__(self, data: ExplorerData, state: ExplorerState, first: MapPanel,
                 side: pn.viewable.Viewable):
        super().__init__()
        self.data, self.state, self.first, self.side = data, state, first, side
        self.second: MapPanel | None = None
        self._columns: list[pn.Column] = []  # both maps under their selectors, once built
        self.box = pn.FlexBox(flex_wrap="wrap", sizing_mode="stretch_width")
        self._single_css = (list(first.pane.stylesheets), list(side.stylesheets))
        state.param.watch(self._arrange, "compare")
        self._arrange()

    def __panel__(self) -> pn.viewable.Viewable:
        return self.box

    def _arrange(self, *_events) -> None:
        if not self.state.compare:
            self.first.pane.stylesheets, self.side.stylesheets = self._single_css
            self.box.objects = [self.first, self.side]
            return
        if self.second is None:
            self.second = MapPanel(self.data, self.state, SECOND_MAP)
            self.second.pane.stylesheets = [COMPARE_MAP_CSS]
            link_hover(self.state, self.first, self.second)
            self._columns = [
                pn.Column(selectors(self.state, "space", "method", "fse-compare-a"),
                          self.first, stylesheets=[COMPARE_COLUMN_CSS],
                          css_classes=["fse-compare-a"]),
                pn.Column(selectors(self.state, "space_b", "method_b", "fse-compare-b"),
                          self.second, stylesheets=[COMPARE_COLUMN_CSS],
                          css_classes=["fse-compare-b"]),
            ]
        self.first.pane.stylesheets = [COMPARE_MAP_CSS]
        self.side.stylesheets = [COMPARE_SIDE_CSS]
        self.box.objects = [*self._columns, self.side]


def link_hover(state: ExplorerState, first: MapPanel, second: MapPanel) -> None:
    """Ring the image under the cursor of either map in both while the compare view is on
    (the hover card follows the first map's `hovered`)."""

    def to_second(event: param.parameterized.Event) -> None:
        if state.compare:
            second.hovered = event.new

    second.param.watch(lambda event: setattr(first, "hovered", event.new), "hovered")
    first.param.watch(to_second, "hovered")
