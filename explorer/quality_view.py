"""The Quality tab: what the quality stage flagged (quality/issues.parquet), as image grids a
person can judge: each near-duplicate group side by side, each likely label mistake with its
given and suggested label beside its nearest neighbours, outliers by score. A button under each
selects those images on the map."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd
import panel as pn

from explorer.cards import image_tile, placeholder
from explorer.data import ExplorerData
from explorer.state import ExplorerState
from explorer.tabs import folding_tabs
from precompute.store import (
    ID_COLUMN,
    LABEL_ISSUE,
    NEAR_DUPLICATE,
    OUTLIER,
    SPLIT_LEAK,
    SpaceKey,
)

T = TypeVar("T")
SHOWN = 12  # groups or images listed per kind
LABEL_NEIGHBOURS = 5

QUALITY_CSS = """
.fse-quality-item { display: flex; gap: 8px; align-items: flex-start; flex-wrap: wrap;
                    padding: 6px 0; border-bottom: 1px solid #eee; }
.fse-quality-item .fse-quality-note { font-size: 12px; color: #444; width: 100%; }
"""


def quality_panel(data: ExplorerData, state: ExplorerState) -> pn.viewable.Viewable:
    """One tab per kind of problem found, or a line saying how to look for them."""
    issues = data.quality
    if issues is None:
        return pn.pane.HTML(placeholder(
            "No quality checks in this store yet: run `precompute quality --store DIR`."),
            sizing_mode="stretch_width")
    rows = {sample: row for row, sample in enumerate(data.column(ID_COLUMN))}
    space = data.store.meta(data.store.quality_path())["space"]
    kinds = [
        ("Near-duplicates", duplicate_groups(issues, rows, data, state)),
        ("Across the split", leak_items(issues, rows, data, state)),
        ("Label mistakes?", label_items(issues, rows, data, state, SpaceKey.parse(space))),
        ("Outliers", outlier_items(issues, rows, data, state)),
    ]
    header = pn.pane.HTML(
        f"<div class='fse-summary'>Checked in {html.escape(space)}; each list shows "
        f"the {SHOWN} most likely first.</div>", sizing_mode="stretch_width")
    tabs = folding_tabs(*((f"{name} ({count})", pn.Column(*items or [pn.pane.HTML(
        placeholder("Nothing found."))], sizing_mode="stretch_width"))
        for name, (count, items) in kinds),
        active=first_with_findings([count for _, (count, _) in kinds]),
        sizing_mode="stretch_width", css_classes=["fse-quality-kinds"])
    return pn.Column(header, tabs, sizing_mode="stretch_width", css_classes=["fse-quality"])


def first_with_findings(counts: list[int]) -> int:
    """The kind the tab opens on: the first with something found (the first when none)."""
    return next((i for i, count in enumerate(counts) if count), 0)


def item(data: ExplorerData, state: ExplorerState, rows: list[int], captions: list[str],
         note: str, kind: str) -> pn.Column:
    """Thumbnails of `rows` with a note and a button selecting them on the map."""
    tiles = "".join(image_tile(data, row, caption)
                    for row, caption in zip(rows, captions, strict=True))
    button = pn.widgets.Button(label=f"Select {len(rows)} on the map", color="primary",
                               css_classes=["fse-quality-select"], width=150)

    def select(_event) -> None:
        state.select(np.array(rows, dtype=np.int64))
        state.show_map()

    button.on_click(select)
    body = pn.pane.HTML(
        f"<div class='fse-quality-item' data-kind='{kind}'>{tiles}"
        f"<div class='fse-quality-note'>{html.escape(note)}</div></div>",
        sizing_mode="stretch_width")
    return pn.Column(body, button, sizing_mode="stretch_width")


def most_likely(found: list[T], build: Callable[[T], pn.Column]) -> tuple[int, list[pn.Column]]:
    """How many were found, and the items of the first SHOWN (`found` is most likely first)."""
    return len(found), [build(one) for one in found[:SHOWN]]


def of_kind(issues: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows of one kind, highest score first."""
    return issues[issues["kind"] == kind].sort_values("score", ascending=False)


def duplicate_groups(issues: pd.DataFrame, rows: dict[str, int], data: ExplorerData,
                     state: ExplorerState) -> tuple[int, list[pn.Column]]:
    """Duplicate groups, the most similar first, members side by side."""
    found = of_kind(issues, NEAR_DUPLICATE)
    groups = [members for _, members in found.groupby("group", sort=False)]  # best first

    def build(members: pd.DataFrame) -> pn.Column:
        return item(data, state, [rows[s] for s in members["sample_id"]],
                    [f"{score:.3f}" for score in members["score"]],
                    f"{len(members)} images, cosine similarity up to "
                    f"{members['score'].max():.3f}", NEAR_DUPLICATE)

    return most_likely(groups, build)


def leak_items(issues: pd.DataFrame, rows: dict[str, int], data: ExplorerData,
               state: ExplorerState) -> tuple[int, list[pn.Column]]:
    """Held-out images with a near-copy in training, beside that copy."""

    def build(r) -> pn.Column:
        return item(data, state, [rows[r.sample_id], rows[r.related_sample_id]],
                    [f"{r.given} split", "train split"],
                    f"a {r.given} image of {r.attribute} has a near-copy in training "
                    f"(similarity {r.score:.3f})", SPLIT_LEAK)

    return most_likely(list(of_kind(issues, SPLIT_LEAK).itertuples()), build)


def label_items(issues: pd.DataFrame, rows: dict[str, int], data: ExplorerData,
                state: ExplorerState, space: SpaceKey) -> tuple[int, list[pn.Column]]:
    """The most suspicious labels, each image beside its nearest neighbours and their labels."""

    def build(r) -> pn.Column:
        row = rows[r.sample_id]
        neighbours, _ = data.neighbours(space, row, LABEL_NEIGHBOURS + 1)
        others = [int(n) for n in neighbours if int(n) != row][:LABEL_NEIGHBOURS]
        column = data.column(r.attribute, space)
        return item(data, state, [row, *others],
                    [f"given: {r.given}", *(str(column.iloc[n]) for n in others)],
                    f"{r.attribute}: given {r.given}, suggested {r.suggested} "
                    f"(score {r.score:.2f}); its nearest neighbours beside it", LABEL_ISSUE)

    return most_likely(list(of_kind(issues, LABEL_ISSUE).itertuples()), build)


def outlier_items(issues: pd.DataFrame, rows: dict[str, int], data: ExplorerData,
                  state: ExplorerState) -> tuple[int, list[pn.Column]]:
    """The images farthest from their neighbours."""

    def build(r) -> pn.Column:
        return item(data, state, [rows[r.sample_id]], [f"distance {r.score:.3f}"],
                    "far from every other image", OUTLIER)

    return most_likely(list(of_kind(issues, OUTLIER).itertuples()), build)
