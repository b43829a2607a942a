"""Nearest neighbours of the clicked image in the current feature space (FAISS, cosine)."""

from __future__ import annotations

import html

import numpy as np
import panel as pn
import param

from explorer.cards import compact_card, neighbour_tile, placeholder
from explorer.data import ExplorerData
from explorer.into_view import IntoView
from explorer.state import NO_ROWS, ExplorerState
from precompute.store import SpaceKey

NEIGHBOURS_K = 12  # neighbours shown besides the image itself
SHARED_K = 10  # the compare view counts how many of this many nearest both spaces share


def follow_focus(data: ExplorerData, state: ExplorerState) -> None:
    """Keep `state.neighbours` (focus first) in step with the focus and the feature space,
    and in the compare view `state.neighbours_b` with the second map's space."""

    def nearest(space: str, wanted: bool = True) -> tuple[np.ndarray, np.ndarray]:
        if state.focus is None or not wanted:
            return NO_ROWS, np.empty(0)
        return data.neighbours(SpaceKey.parse(space), state.focus, NEIGHBOURS_K + 1)

    def update(*_events) -> None:
        rows, similarities = nearest(state.space)
        state.param.update(neighbours=rows, similarities=similarities)

    def update_second(*_events) -> None:
        rows, similarities = nearest(state.space_b, state.compare)
        state.param.update(neighbours_b=rows, similarities_b=similarities)

    state.param.watch(update, ["focus", "space"])
    state.param.watch(update_second, ["focus", "space_b", "compare"])
    update()
    update_second()


def shared_count(first: np.ndarray, second: np.ndarray, k: int = SHARED_K) -> int:
    """How many of the `k` nearest (after the focus, which leads both: `data.neighbours`) two
    spaces share."""
    return len(np.intersect1d(first[1:k + 1], second[1:k + 1]))


class NeighboursPanel(pn.viewable.Viewer):
    """The clicked image, then its neighbours with similarity, each refocusable: drawn from
    the state's neighbours, colour-by and feature space whenever they change."""

    data = param.ClassSelector(class_=ExplorerData, constant=True)
    state = param.ClassSelector(class_=ExplorerState, constant=True)

    def __panel__(self) -> pn.viewable.Viewable:
        state = self.state
        band = IntoView()  # over the first row of neighbours: shown after each click

        def show_neighbours(event: param.parameterized.Event) -> None:
            if event.new is not None:  # an image clicked, not the focus cleared
                band.show()

        state.param.watch(show_neighbours, "focus")
        return pn.Column(
            pn.pane.HTML(pn.bind(self.shared, state.param.neighbours, state.param.neighbours_b,
                                 state.param.space_b), sizing_mode="stretch_width"),
            pn.pane.HTML(pn.bind(self.focused, state.param.neighbours, state.param.space,
                                 state.param.color_by),
                         sizing_mode="stretch_width", css_classes=["fse-focus"]),
            band,
            pn.bind(self.grid, state.param.neighbours, state.param.similarities,
                    state.param.color_by, state.param.space),
            pn.bind(self.second, state.param.neighbours_b, state.param.color_by,
                    state.param.space_b),
            sizing_mode="stretch_width",
        )

    @staticmethod
    def shared(rows: np.ndarray, rows_b: np.ndarray, space_b: str) -> str:
        """In the compare view, how many of the clicked image's nearest the two maps' spaces
        share (first, where the eye is)."""
        if not len(rows) or not len(rows_b):
            return ""
        return (f"<div class='fse-shared'><b>{shared_count(rows, rows_b)} of {SHARED_K}</b> "
                f"nearest are the same in both maps' spaces (rings on both maps)</div>")

    def second(self, rows_b: np.ndarray, color_by: str, space_b: str) -> pn.Column:
        """In the compare view, the clicked image's neighbours in the second map's space."""
        if not len(rows_b):
            return pn.Column()
        title = (f"<div class='fse-neighbours-title'>Nearest in {html.escape(space_b)} "
                 "(second map)</div>")
        return pn.Column(pn.pane.HTML(title, sizing_mode="stretch_width"),
                         self.grid(rows_b, self.state.similarities_b, color_by, space_b),
                         sizing_mode="stretch_width")

    def focused(self, rows: np.ndarray, space: str, color_by: str) -> str:
        """The clicked image in short, or how to choose one."""
        if not len(rows):
            return placeholder("Click a point (or a grid image) to see its neighbours.")
        return (f"<div class='fse-neighbours-title'>Nearest in {html.escape(space)}</div>"
                + compact_card(self.data, rows[0], SpaceKey.parse(space), color_by))

    def grid(self, rows: np.ndarray, similarities: np.ndarray, color_by: str, space: str
             ) -> pn.FlexBox:
        """A tile per neighbour: thumbnail, similarity and colour-by value, and a button that
        makes it the clicked image."""
        key, tiles = SpaceKey.parse(space), []
        for row, similarity in zip(rows[1:], similarities[1:], strict=True):
            button = pn.widgets.Button(label="neighbours", color="light", width=112,
                                       css_classes=["fse-refocus"])
            button.on_click(lambda _event, row=int(row): setattr(self.state, "focus", row))
            tile = neighbour_tile(self.data, row, similarity, key, color_by)
            tiles.append(pn.Column(pn.pane.HTML(tile), button,
                                   css_classes=["fse-neighbour"], width=124))
        return pn.FlexBox(*tiles, sizing_mode="stretch_width", css_classes=["fse-neighbours"])
