"""The explorer: the map with its selectors, legend, filters, hover card, neighbours and
selection, as a notebook-friendly `Explorer` and as the served page (`explorer_page`)."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import holoviews as hv
import panel as pn
import param

from explorer.access import session_allowed
from explorer.build_status import BUILD_CSS, BuildBanner, build_note, reload_when_ready
from explorer.cards import CARD_CSS, image_card, placeholder
from explorer.compare_view import MapArea, contrast_space
from explorer.data import CLUSTER, ExplorerData, load_explorer_data, store_ready
from explorer.filters import filters_panel, follow_filters
from explorer.into_view import IntoView
from explorer.layer_strip import STRIP_CSS
from explorer.legend import (
    ISOLATION_NOTE_CSS,
    LEGEND_CSS,
    Legend,
    isolation_note,
    legend_content,
    legend_values,
    toggled,
)
from explorer.location import build_hint
from explorer.map_panel import NARROW, MapPanel
from explorer.metrics_view import metrics_panel
from explorer.neighbours import NeighboursPanel, follow_focus
from explorer.quality_view import QUALITY_CSS, quality_panel
from explorer.query_panel import query_panel
from explorer.selection import TABLE_CSS, selection_panel
from explorer.separability_view import SEPARABILITY_CSS, separability_panel
from explorer.state import METHOD_LABELS, ExplorerState
from explorer.tabs import TabsBuiltWhenOpened
from explorer.url_state import link_to_url
from explorer.why import WhyPanel
from precompute.progress import RUNNING, read_progress
from precompute.store import PENULTIMATE, SpaceKey, Store

TITLE = "Feature Space Explorer"
ACCENT = "#2f6690"
CSS = [LEGEND_CSS, CARD_CSS, TABLE_CSS, QUALITY_CSS, SEPARABILITY_CSS, STRIP_CSS, BUILD_CSS]
SIDE_CSS = f"""
:host {{ flex: 1 1 280px; max-width: 420px; height: max(420px, calc(100vh - 150px)); }}
@media {NARROW} {{ :host {{ height: 280px; max-width: none; }} }}
"""  # beside the map as tall as it, or below it (explorer/map_panel.py)
# The hover card scrolls past 40% of the window, so a click's neighbours below it start in view
HOVER_CSS = ":host { max-height: 40vh; overflow-y: auto; }"


class Explorer(pn.viewable.Viewer):
    """Everything for one store and one session. In a notebook: `Explorer(store=path)`;
    served: `explorer_page(path)` wraps it in a page template."""

    store = param.String(doc="path of the store to explore")
    dask = param.String(default=None, allow_None=True,
                        doc="Dask scheduler of the map: 'local' or an address (None: in memory)")

    def __init__(self, **params):
        super().__init__(**params)
        load_extensions()
        # the same arguments as warm_up's call, so the server opens the store once
        self.data = load_explorer_data(str(Path(self.store).resolve()), self.dask)
        self.state = new_state(self.data)
        follow_filters(self.data, self.state)
        follow_focus(self.data, self.state)
        link_to_url(self.state, self.data)
        # a link may name values this store's legend does not list
        listed = legend_values(self.data, self.state.color_by, self.state.space)
        self.state.isolated = [v for v in self.state.isolated if v in listed]
        self.map = MapPanel(self.data, self.state)

    def controls(self) -> list[pn.viewable.Viewable]:
        """Selectors, legend and filters: the sidebar. The selectors come with the map; the rest
        once the page has loaded."""
        state = self.state
        return [
            pn.widgets.Select.from_param(state.param.space, label="Feature space",
                                         css_classes=["fse-space"]),
            pn.widgets.Select.from_param(state.param.method, label="Projection",
                                         css_classes=["fse-method"]),
            pn.widgets.Select.from_param(state.param.color_by, label="Colour by",
                                         css_classes=["fse-color-by"]),
            pn.widgets.Checkbox.from_param(state.param.compare,
                                           label="Compare with a second map",
                                           css_classes=["fse-compare"]),
            built_after_load(self._legend_and_filters, sizing_mode="stretch_width"),
        ]

    def _legend_and_filters(self) -> list[pn.viewable.Viewable]:
        state = self.state
        return [
            Legend(self._pick_legend_value,
                   content=pn.bind(legend_content, self.data, state.param.color_by,
                                   state.param.space, state.param.isolated),
                   css_classes=["fse-legend"], sizing_mode="stretch_width", margin=(0, 10)),
            pn.pane.HTML(pn.bind(isolation_note, self.data, state.param.color_by,
                                 state.param.space, state.param.isolated, state.param.selection),
                         sizing_mode="stretch_width", margin=(0, 10),
                         stylesheets=[ISOLATION_NOTE_CSS]),
            *([pn.widgets.Checkbox.from_param(
                state.param.cluster_labels, label="Label each cluster with what it over-represents",
                css_classes=["fse-cluster-labels"])] if CLUSTER in self.data.kinds else []),
            pn.widgets.Checkbox.from_param(
                state.param.density_contours, label="Draw density contours",
                css_classes=["fse-density-contours"]),
            rule(),
            pn.pane.HTML("<b>Filter</b>"),
            filters_panel(self.data, state),
            pn.pane.HTML(
                f"<div class='fse-summary'>{len(self.data):,} images · "
                f"{html.escape(str(self.data.store.root))}</div>",
                sizing_mode="stretch_width",
            ),
        ]

    def _pick_legend_value(self, value: str, additive: bool) -> None:
        self.state.isolated = toggled(self.state.isolated, value, additive)

    def hover_card(self) -> pn.pane.HTML:
        """The image under the cursor, at any zoom."""

        def card(row: int | None, space: str) -> str:
            if row is None:
                return placeholder("Hover over a point to see the image.")
            return image_card(self.data, row, SpaceKey.parse(space))

        return pn.pane.HTML(pn.bind(card, self.map.param.hovered, self.state.param.space),
                            css_classes=["fse-hover"], stylesheets=[HOVER_CSS],
                            sizing_mode="stretch_width", min_height=140)

    def main(self) -> list[pn.viewable.Viewable]:
        """The map with the hover card and neighbours beside it, the selection below; all but
        the map once the page has loaded."""
        side = built_after_load(self._side, scroll=True, css_classes=["fse-side"],
                                sizing_mode="stretch_width", stylesheets=[SIDE_CSS])
        tabs = built_after_load(self._tabs, sizing_mode="stretch_width")
        banner = BuildBanner(self.data.store.root, self.data.stamp)
        to_map = IntoView(block="start")  # the page's top: the map, under the build's banner
        self.state.param.watch(lambda _event: to_map.show(), "map_wanted")
        return [to_map, banner, MapArea(self.data, self.state, self.map, side), tabs]

    def _side(self) -> list[pn.viewable.Viewable]:
        return [
            self.selection_note(),
            pn.pane.HTML("<b>Under the cursor</b>"), self.hover_card(),
            rule(),
            pn.pane.HTML("<b>Neighbours</b>"), NeighboursPanel(data=self.data, state=self.state),
            WhyPanel(data=self.data, state=self.state),
        ]

    def selection_note(self) -> pn.Row:
        """The selection's count beside the map (its images are in the Selection tab, below
        the fold), with a button that brings them into view; hidden when nothing is
        selected."""
        count = pn.pane.HTML(css_classes=["fse-selection-note"], sizing_mode="stretch_width")
        show = pn.widgets.Button(label="Show them", css_classes=["fse-show-selection"],
                                 width=110)
        show.on_click(lambda _event: self.state.show_selection())
        note = pn.Row(count, show, sizing_mode="stretch_width")

        def follow(*_events) -> None:
            selected = len(self.state.selection)
            count.object = f"<b>{selected:,}</b> of {len(self.data):,} images selected"
            note.visible = selected > 0

        self.state.param.watch(follow, "selection")
        follow()
        return note

    def _tabs(self) -> list[pn.viewable.Viewable]:
        later = {
            "Layers": lambda: separability_panel(self.data, self.state),
            "Metrics": lambda: metrics_panel(self.data, self.state),
            "Quality": lambda: quality_panel(self.data, self.state),
            "Query an image": lambda: query_panel(self.data, self.state),
        }
        tabs = TabsBuiltWhenOpened(
            ("Selection", selection_panel(self.data, self.state)), later,
            opened=lambda name: setattr(self.state, "tab", name),
            sizing_mode="stretch_width", css_classes=["fse-tabs"])
        self.state.param.watch(lambda _event: tabs.open("Selection"), "selection_wanted")
        return [tabs]

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Row(
            pn.Column(*self.controls(), width=300),
            pn.Column(*self.main(), sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )


def rule() -> pn.pane.HTML:
    """A horizontal line across its column (Panel's `Divider` collapses to a 2-px dot in these
    columns)."""
    return pn.pane.HTML("<hr style='border: 0; border-top: 1px solid #ddd; margin: 6px 0'>",
                        sizing_mode="stretch_width", margin=(0, 5))


def built_after_load(build: Callable[[], list[pn.viewable.Viewable]], **params) -> pn.Column:
    """A column that `build` fills once the browser has the page (Panel's `onload`), so a
    session's first document carries the map and its selectors only; filled at once outside a
    server (a notebook)."""
    column = pn.Column(**params)

    def fill() -> None:
        column.objects = build()

    pn.state.onload(fill)
    return column


def load_extensions() -> None:
    """Panel's extensions and the page's CSS. Plots draw on a canvas, not WebGL: the map is an
    image rendered on the server, and a WebGL context would cost the browser the bokeh-gl bundle
    and a blit on every draw (docs/benchmarks.md, first paint)."""
    pn.extension("filedropper", raw_css=CSS)
    hv.renderer("bokeh").webgl = False


def explorer_page(root: str | Path, dask: str | None = None) -> pn.template.BaseTemplate:
    """The served page for the store at `root` (its map aggregated through the Dask scheduler
    `dask`, if given), or a page saying how to build it."""
    root = Path(root).resolve()
    if not session_allowed():
        return message_page(
            "This explorer serves this machine only",
            "<p>Start the server with <code>--address</code> and "
            "<code>--allow-websocket-origin</code> (and <code>--basic-auth</code> or OAuth) "
            "to share it on a network.</p>",
        )
    if not store_ready(root):
        progress = read_progress(Store(root))
        waiting = reload_when_ready(lambda: store_ready(root))
        if progress is not None and progress.state == RUNNING:
            line, css_class = build_note(progress, root)
            return message_page(
                "The store is being built",
                f"<p class='{css_class}'>{line}</p><p>The first map shows here as soon as it "
                "lands: this page reloads itself.</p>", waiting)
        return message_page(
            "No store to explore yet",
            f"<p>There is no built store at <code>{html.escape(str(root))}</code>.</p>"
            f"<p>Build it with:</p><pre>{html.escape(build_hint(root))}</pre>"
            "<p>The map shows here as soon as the first one lands: this page reloads itself.</p>",
            waiting,
        )
    explorer = Explorer(store=str(root), dask=dask)
    # One column per area: each item given to a template is a root of the document, and Bokeh
    # walks every model of the document again for each root added.
    return page_template(sidebar=[pn.Column(*explorer.controls(), sizing_mode="stretch_width")],
                         main=[pn.Column(*explorer.main(), sizing_mode="stretch_width")])


class LocalVanillaTemplate(pn.template.VanillaTemplate):
    """Panel's plain template without its one outside resource: the Lato stylesheet from
    fonts.googleapis.com that `VanillaTemplate._resources` links. Every other file the page
    loads comes from the explorer's own server; the template's CSS falls back from Lato to
    the browser's sans-serif."""

    _resources = {"css": {}}


def page_template(**content) -> pn.template.BaseTemplate:
    """The page around the explorer: Panel's plain template (the FAST one's web components
    slow a first paint: docs/benchmarks.md), linking nothing outside the server."""
    return LocalVanillaTemplate(title=TITLE, header_background=ACCENT, sidebar_width=320,
                                **content)


def new_state(data: ExplorerData) -> ExplorerState:
    """A session state showing the default feature space, its map that keeps the most
    neighbours, and the first attribute."""
    state = ExplorerState()
    spaces = {data.space_label(s): str(s) for s in data.spaces}
    state.param.space.objects = spaces
    state.param.space_b.objects = spaces
    state.param.color_by.objects = data.colour_attributes
    state.space = str(default_space(data.spaces))
    state.space_b = str(contrast_space(data.spaces, SpaceKey.parse(state.space)))
    state.color_by = data.colour_attributes[0]
    for space, method in (("space", "method"), ("space_b", "method_b")):
        _follow_space(data, state, space, method)
        state.param.watch(lambda _event, s=space, m=method: _follow_space(data, state, s, m),
                          space)
    state.param.watch(lambda _event: setattr(state, "isolated", []), "color_by")
    state.param.watch(lambda _event: _forget_other_clusters(state), "space")
    return state


def _forget_other_clusters(state: ExplorerState) -> None:
    """Each space has its own clusters ("cluster 3" of one is not that of another): isolated
    clusters are cleared when the space changes."""
    if state.color_by == CLUSTER:
        state.isolated = []


def default_space(spaces: list[SpaceKey]) -> SpaceKey:
    """The space a session opens on: a fine-tuned model's penultimate layer when there is one
    (the feature space the demo is about), else the pretrained penultimate, else the first."""
    penultimate = [s for s in spaces if s.layer == PENULTIMATE]
    finetuned = [s for s in penultimate if not s.pretrained]
    return (finetuned or penultimate or spaces)[0]


def method_label(method: str, trust: dict[str, float]) -> str:
    """How a map is named in the selector: its method and the share of neighbours it keeps."""
    name = METHOD_LABELS.get(method, method)
    kept = trust.get("neighbour_preservation")
    return name if kept is None else f"{name} · keeps {kept:.0%} of neighbours"


def _follow_space(data: ExplorerData, state: ExplorerState, space_name: str = "space",
                  method_name: str = "method") -> None:
    """Offer the maps one map's space has (the first map's, or with `space_b`/`method_b` the
    second's), keeping the chosen method when possible, else the one that keeps the most
    neighbours."""
    space = SpaceKey.parse(getattr(state, space_name))
    methods = data.methods[space]
    state.param[method_name].objects = {method_label(m, data.trust[space, m]): m
                                        for m in methods}
    if getattr(state, method_name) not in methods:
        setattr(state, method_name, data.best_method(space))


def message_page(heading: str, body_html: str, *more: pn.viewable.Viewable
                 ) -> pn.template.BaseTemplate:
    """A page with one message instead of the explorer (and `more` below it)."""
    load_extensions()
    message = pn.pane.HTML(
        f"<div class='fse-message'><h2>{html.escape(heading)}</h2>{body_html}</div>",
        sizing_mode="stretch_width",
    )
    return page_template(main=[pn.Column(message, *more, sizing_mode="stretch_width")])
