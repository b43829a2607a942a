"""Nearest neighbours of the clicked image in the current feature space (FAISS, cosine)."""

from __future__ import annotations

import html

import numpy as np
import panel as pn

from explorer.cards import image_card, image_tile, placeholder
from explorer.data import ExplorerData
from explorer.state import NO_ROWS, ExplorerState
from precompute.store import SpaceKey

NEIGHBOURS_K = 12  # neighbours shown besides the image itself


def follow_focus(data: ExplorerData, state: ExplorerState) -> None:
    """Keep `state.neighbours` (focus first) in step with the focus and the feature space."""

    def update(*_events) -> None:
        if state.focus is None:
            state.param.update(neighbours=NO_ROWS, similarities=np.empty(0))
            return
        rows, similarities = data.neighbours(
            SpaceKey.parse(state.space), state.focus, NEIGHBOURS_K + 1
        )
        state.param.update(neighbours=rows, similarities=similarities)

    state.param.watch(update, ["focus", "space"])
    update()


def neighbours_panel(data: ExplorerData, state: ExplorerState) -> pn.Column:
    """The clicked image, then its neighbours with similarity, each refocusable."""
    focused = pn.pane.HTML(sizing_mode="stretch_width", css_classes=["fse-focus"])
    grid = pn.FlexBox(sizing_mode="stretch_width", css_classes=["fse-neighbours"])

    def refocus(row: int):
        def click(_event) -> None:
            state.focus = row

        return click

    def show(*_events) -> None:
        rows, similarities = state.neighbours, state.similarities
        if not len(rows):
            focused.object = placeholder("Click a point (or a grid image) to see its neighbours.")
            grid.objects = []
            return
        space = SpaceKey.parse(state.space)
        focused.object = (
            f"<div class='fse-neighbours-title'>Nearest in "
            f"{html.escape(state.space)}</div>" + image_card(data, rows[0], space)
        )
        tiles = []
        for row, similarity in zip(rows[1:], similarities[1:], strict=True):
            button = pn.widgets.Button(label="neighbours", color="light", width=112,
                                       css_classes=["fse-refocus"])
            button.on_click(refocus(int(row)))
            caption = f"{similarity:.3f} · {data.describe(row, space)[state.color_by]}"
            tiles.append(pn.Column(pn.pane.HTML(image_tile(data, row, caption)), button,
                                   css_classes=["fse-neighbour"], width=124))
        grid.objects = tiles

    state.param.watch(show, ["neighbours", "color_by", "space"])
    show()
    return pn.Column(focused, grid, sizing_mode="stretch_width")
