"""The explorer page: a Panel template with the map, its selectors and the legend."""

from __future__ import annotations

import html
from pathlib import Path

import panel as pn

from explorer.access import session_allowed
from explorer.data import ExplorerData, load_explorer_data, store_ready
from explorer.legend import LEGEND_CSS, legend_html
from explorer.location import build_hint
from explorer.scatter import map_view
from explorer.state import METHOD_LABELS, ExplorerState
from precompute.store import SpaceKey

TITLE = "Feature Space Explorer"
ACCENT = "#2f6690"


def explorer_page(root: str | Path) -> pn.template.BaseTemplate:
    """The whole page for the store at `root`, or a page saying how to build it."""
    pn.extension(raw_css=[LEGEND_CSS])
    root = Path(root).resolve()
    if not session_allowed():
        return message_page(
            "This explorer serves this machine only",
            "<p>Start the server with <code>--address</code> and "
            "<code>--allow-websocket-origin</code> (and <code>--basic-auth</code> or OAuth) "
            "to share it on a network.</p>",
        )
    if not store_ready(root):
        return message_page(
            "No store to explore yet",
            f"<p>There is no built store at <code>{html.escape(str(root))}</code>.</p>"
            f"<p>Build it with:</p><pre>{html.escape(build_hint(root))}</pre>"
            "<p>then reload this page.</p>",
        )
    data = load_explorer_data(str(root))
    state = new_state(data)
    return _layout(data, state)


def new_state(data: ExplorerData) -> ExplorerState:
    """A session state showing the first feature space, its first method, the first attribute."""
    state = ExplorerState()
    spaces = {space_label(s): str(s) for s in data.spaces}
    state.param.space.objects = spaces
    state.param.color_by.objects = data.colour_attributes
    state.space = next(iter(spaces.values()))
    state.color_by = data.colour_attributes[0]
    _follow_space(data, state)
    state.param.watch(lambda _event: _follow_space(data, state), "space")
    return state


def space_label(space: SpaceKey) -> str:
    """How a feature space is named in the selector."""
    return f"{space.model} · {space.layer}"


def _follow_space(data: ExplorerData, state: ExplorerState) -> None:
    """Offer the methods the current space has, keeping the chosen one when possible."""
    methods = data.methods[SpaceKey.parse(state.space)]
    state.param.method.objects = {METHOD_LABELS.get(m, m): m for m in methods}
    if state.method not in methods:
        state.method = methods[0]


def _layout(data: ExplorerData, state: ExplorerState) -> pn.template.BaseTemplate:
    selectors = [
        pn.widgets.Select.from_param(
            state.param.space, name="Feature space", css_classes=["fse-space"]
        ),
        pn.widgets.Select.from_param(
            state.param.method, name="Projection", css_classes=["fse-method"]
        ),
        pn.widgets.Select.from_param(
            state.param.color_by, name="Colour by", css_classes=["fse-color-by"]
        ),
    ]
    legend = pn.pane.HTML(
        pn.bind(legend_html, data, state.param.color_by),
        css_classes=["fse-legend"],
        sizing_mode="stretch_width",
    )
    summary = pn.pane.HTML(
        f"<div class='fse-summary'>{len(data):,} images · "
        f"{html.escape(str(data.store.root))}</div>",
        sizing_mode="stretch_width",
    )
    plot = pn.pane.HoloViews(
        map_view(data, state), sizing_mode="stretch_both", css_classes=["fse-map"]
    )
    return pn.template.FastListTemplate(
        title=TITLE,
        sidebar=[*selectors, legend, summary],
        main=[plot],
        sidebar_width=300,
        accent=ACCENT,
    )


def message_page(heading: str, body_html: str) -> pn.template.BaseTemplate:
    """A page with one message instead of the explorer."""
    message = pn.pane.HTML(
        f"<div class='fse-message'><h2>{html.escape(heading)}</h2>{body_html}</div>",
        sizing_mode="stretch_width",
    )
    return pn.template.FastListTemplate(title=TITLE, main=[message], accent=ACCENT)
