"""Nearest neighbours of the clicked image in the current feature space (FAISS, cosine)."""

from __future__ import annotations

import html

import numpy as np
import panel as pn
import param

from explorer.cards import image_card, neighbour_tile, placeholder
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


class NeighboursPanel(pn.viewable.Viewer):
    """The clicked image, then its neighbours with similarity, each refocusable: drawn from
    the state's neighbours, colour-by and feature space whenever they change."""

    data = param.ClassSelector(class_=ExplorerData, constant=True)
    state = param.ClassSelector(class_=ExplorerState, constant=True)

    def __panel__(self) -> pn.viewable.Viewable:
        state = self.state
        return pn.Column(
            pn.pane.HTML(pn.bind(self.focused, state.param.neighbours, state.param.space),
                         sizing_mode="stretch_width", css_classes=["fse-focus"]),
            pn.bind(self.grid, state.param.neighbours, state.param.color_by, state.param.space),
            sizing_mode="stretch_width",
        )

    def focused(self, rows: np.ndarray, space: str) -> str:
        """The clicked image's card, or how to choose one."""
        if not len(rows):
            return placeholder("Click a point (or a grid image) to see its neighbours.")
        return (f"<div class='fse-neighbours-title'>Nearest in {html.escape(space)}</div>"
                + image_card(self.data, rows[0], SpaceKey.parse(space)))

    def grid(self, rows: np.ndarray, color_by: str, space: str) -> pn.FlexBox:
        """A tile per neighbour: thumbnail, similarity and colour-by value, and a button that
        makes it the clicked image."""
        key, tiles = SpaceKey.parse(space), []
        for row, similarity in zip(rows[1:], self.state.similarities[1:], strict=True):
            button = pn.widgets.Button(label="neighbours", color="light", width=112,
                                       css_classes=["fse-refocus"])
            button.on_click(lambda _event, row=int(row): setattr(self.state, "focus", row))
            tile = neighbour_tile(self.data, row, similarity, key, color_by)
            tiles.append(pn.Column(pn.pane.HTML(tile), button,
                                   css_classes=["fse-neighbour"], width=124))
        return pn.FlexBox(*tiles, sizing_mode="stretch_width", css_classes=["fse-neighbours"])
