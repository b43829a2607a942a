"""Filters: keep images with chosen attribute values and matching a text search (applied as the
user types); the rest are dimmed or hidden on the map."""

from __future__ import annotations

import html

import panel as pn

from explorer.after_pause import AfterPause
from explorer.data import CLUSTER, ExplorerData
from explorer.state import ExplorerState
from precompute.store import CATEGORICAL, TEXT, SpaceKey

MAX_OPTIONS = 1_000  # attributes with more values than this get no value filter
SEARCH_PAUSE_MS = 300  # the search box applies what was typed after this pause


def escaped_options(values) -> dict[str, str]:
    """Options for a choices widget, which renders labels as HTML (widget titles are text):
    escaped labels, raw values."""
    return {html.escape(str(value)): str(value) for value in values}


def css_name(attribute: str) -> str:
    """A class-name-safe form of an attribute name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in attribute)


def follow_filters(data: ExplorerData, state: ExplorerState) -> None:
    """Keep `state.mask` in step with the attribute filters and the text search."""

    def update(*_events) -> None:
        space = SpaceKey.parse(state.space)
        state.mask = data.filter_mask(state.filters, state.search, space)

    state.param.watch(update, ["filters", "search", "space"])
    update()


def search_placeholder(data: ExplorerData) -> str:
    """What the search box looks in, named from the store's own columns: its text columns,
    then its categories."""
    searched = [a for a in data.attributes_of(TEXT) + data.attributes_of(CATEGORICAL)
                if a != CLUSTER]
    return ", ".join(searched[:3]) + (", …" if len(searched) > 3 else "")


def search_as_typed(box: pn.widgets.TextInput, state: ExplorerState) -> None:
    """Search as the user types: each keystroke's text is applied once typing has paused for
    SEARCH_PAUSE_MS (at once outside a server), and Enter applies it at once."""
    apply = AfterPause(lambda: setattr(state, "search", box.value_input or ""), SEARCH_PAUSE_MS)
    box.param.watch(lambda _event: apply(), "value_input")
    box.param.watch(lambda event: setattr(state, "search", event.new), "value")


def match_count(images: int, mask) -> str:
    """How many of the `images` the filters and search keep."""
    text = (f"{images:,} images" if mask is None
            else f"<b>{int(mask.sum()):,}</b> of {images:,} images match")
    return f"<div class='fse-match'>{text}</div>"


def filters_panel(data: ExplorerData, state: ExplorerState) -> pn.Column:
    """A value filter per categorical attribute, a text search, dim/hide, and the match count."""
    choosers = []
    for attribute in data.attributes_of(CATEGORICAL):
        counts = data.value_counts(attribute, SpaceKey.parse(state.space))
        if len(counts) > MAX_OPTIONS:
            continue
        chooser = pn.widgets.MultiChoice(
            label=attribute, options=escaped_options(counts.index),
            value=state.filters.get(attribute, []),
            placeholder=f"all {attribute} values",
            css_classes=[f"fse-filter-{css_name(attribute)}"], sizing_mode="stretch_width",
        )

        def changed(event, attribute=attribute) -> None:
            state.filters = {**state.filters, attribute: list(event.new)}

        chooser.param.watch(changed, "value")
        if attribute == CLUSTER:  # each feature space has its own clusters
            def follow_space(_event, chooser=chooser) -> None:
                counts = data.value_counts(CLUSTER, SpaceKey.parse(state.space))
                chooser.param.update(options=escaped_options(counts.index), value=[])

            state.param.watch(follow_space, "space")
        choosers.append(chooser)
    search = pn.widgets.TextInput(
        label="Search text", value=state.search, placeholder=search_placeholder(data),
        css_classes=["fse-search"], sizing_mode="stretch_width",
    )
    search_as_typed(search, state)
    hide = pn.widgets.Switch.from_param(state.param.hide_filtered, label="hide")
    count = pn.pane.HTML(pn.bind(match_count, len(data), state.param.mask),
                         css_classes=["fse-match-count"], sizing_mode="stretch_width")
    return pn.Column(
        *choosers, search,
        pn.Row(pn.pane.HTML("Hide non-matching points"), hide),
        count,
        sizing_mode="stretch_width",
    )
