"""The selection: how many, how its attribute values compare with the whole set, a paged grid
of its thumbnails, and export of what was selected."""

from __future__ import annotations

import html
import io

import numpy as np
import pandas as pd
import panel as pn

from explorer.cards import image_tile, placeholder
from explorer.clusters_view import enrichment_html, select_by_value
from explorer.data import CLUSTER, ExplorerData
from explorer.state import ExplorerState
from precompute.store import ID_COLUMN, NUMERIC, PATH_COLUMN, SpaceKey

PAGE_SIZE = 24
COUNT_ROWS = 15  # values listed in the selection-vs-all table

TABLE_CSS = """
.fse-counts { border-collapse: collapse; font-size: 13px; width: 100%; }
.fse-counts th, .fse-counts td { padding: 2px 8px; text-align: right; }
.fse-counts th:first-child, .fse-counts td:first-child { text-align: left; }
.fse-counts tr:nth-child(even) { background: #f5f5f5; }
"""


def value_counts_html(data: ExplorerData, attribute: str, rows: np.ndarray,
                      space: SpaceKey) -> str:
    """Counts of each value of `attribute` in the selection against the whole set."""
    column = data.column(attribute, space)
    if data.kinds[attribute] == NUMERIC:
        chosen = column.iloc[rows]
        return (
            f"<table class='fse-counts'><tr><th>{html.escape(attribute)}</th><th>selection</th>"
            "<th>all</th></tr>"
            + "".join(
                f"<tr><td>{name}</td><td>{getattr(chosen, name)():.4g}</td>"
                f"<td>{getattr(column, name)():.4g}</td></tr>"
                for name in ("mean", "median", "min", "max")
            )
            + "</table>"
        )
    selected = column.iloc[rows].value_counts()
    selected = selected[selected > 0]
    overall = data.value_counts(attribute, space)
    body = []
    for value, count in selected.head(COUNT_ROWS).items():
        share, base = count / len(rows), overall[value] / len(column)
        body.append(
            f"<tr><td>{html.escape(str(value))}</td><td>{count:,}</td><td>{share:.0%}</td>"
            f"<td>{overall[value]:,}</td><td>{base:.0%}</td><td>{share / base:.1f}×</td></tr>"
        )
    more = len(selected) - COUNT_ROWS
    return (
        f"<table class='fse-counts'><tr><th>{html.escape(attribute)}</th><th>selected</th>"
        "<th>%</th><th>all</th><th>%</th><th>ratio</th></tr>" + "".join(body) + "</table>"
        + (f"<div class='fse-placeholder'>and {more} more values</div>" if more > 0 else "")
    )


def selection_table(data: ExplorerData, state: ExplorerState) -> pd.DataFrame:
    """The selected images by sample id: path, attributes and their coordinates on the current
    map."""
    rows, space = state.selection, SpaceKey.parse(state.space)
    xy = data.coords(space, state.method)[rows]
    table = data.table.iloc[rows].reset_index(drop=True)
    if CLUSTER in data.kinds:
        table[CLUSTER] = data.clusters(space).iloc[rows].to_numpy()
    for attribute in table.columns:
        if isinstance(table[attribute].dtype, pd.CategoricalDtype):
            table[attribute] = table[attribute].astype("string")
    return table.assign(
        **{f"{state.method}_x": xy[:, 0], f"{state.method}_y": xy[:, 1]}
    )[[ID_COLUMN, PATH_COLUMN, *data.kinds, f"{state.method}_x", f"{state.method}_y"]]


def selection_panel(data: ExplorerData, state: ExplorerState) -> pn.Column:
    """Header with count, clear and export; the counts table; the paged thumbnail grid."""
    page = pn.widgets.IntInput(value=0, visible=False)
    header = pn.pane.HTML(sizing_mode="stretch_width", css_classes=["fse-selection-count"])
    clear = pn.widgets.Button(label="Clear selection", color="light", width=130)
    clear.on_click(lambda _event: state.select(np.empty(0, dtype=np.int64)))

    def export(kind: str):
        def build() -> io.BytesIO:
            buffer = io.BytesIO()
            table = selection_table(data, state)
            if kind == "csv":
                buffer.write(table.to_csv(index=False).encode("utf-8"))
            else:
                table.to_parquet(buffer, index=False)
            buffer.seek(0)
            return buffer

        return pn.widgets.FileDownload(
            callback=build, filename=f"selection.{kind}", label=f"Export {kind.upper()}",
            color="primary", variant="outline", width=130,
            css_classes=[f"fse-export-{kind}"],
        )

    counts = pn.pane.HTML(sizing_mode="stretch_width", css_classes=["fse-selection-counts"])
    enrichment = pn.pane.HTML(sizing_mode="stretch_width", css_classes=["fse-cluster"])
    grid = pn.FlexBox(sizing_mode="stretch_width", css_classes=["fse-grid"])
    previous = pn.widgets.Button(label="‹ previous", color="light", width=100)
    following = pn.widgets.Button(label="next ›", color="light", width=100)
    position = pn.pane.HTML(css_classes=["fse-page"])
    previous.on_click(lambda _e: setattr(page, "value", max(0, page.value - 1)))
    following.on_click(lambda _e: setattr(page, "value", page.value + 1))

    shown: list[int] = []  # rows on the current page, one per tile
    tiles: list[pn.Column] = []  # grown to the largest page seen, then reused

    def new_tile(index: int) -> pn.Column:
        button = pn.widgets.Button(label="neighbours", color="light", width=112,
                                   css_classes=["fse-grid-neighbours"])
        button.on_click(lambda _event: setattr(state, "focus", shown[index]))
        return pn.Column(pn.pane.HTML(), button, css_classes=["fse-grid-item"], width=124)

    def show_page(*_events) -> None:
        """Fill the tiles with the page's images. Tiles are made once and refilled: making
        them anew took most of a selection's time, and any change to the grid's children makes
        Bokeh walk the whole document."""
        rows = state.selection
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        if page.value >= pages:
            page.value = pages - 1
            return
        shown[:] = [int(r) for r in rows[page.value * PAGE_SIZE:(page.value + 1) * PAGE_SIZE]]
        if len(tiles) < len(shown):
            tiles.extend(new_tile(i) for i in range(len(tiles), len(shown)))
            grid.objects = list(tiles)
        space = SpaceKey.parse(state.space)
        for index, tile in enumerate(tiles):
            if index < len(shown):
                caption = data.describe(shown[index], space)[state.color_by]
                tile[0].object = image_tile(data, shown[index], caption)
            else:
                tile[0].object = ""
            tile.visible = index < len(shown)
        position.object = f"page {page.value + 1} of {pages}" if len(rows) else ""
        previous.disabled, following.disabled = page.value == 0, page.value >= pages - 1

    def show(*_events) -> None:
        rows = state.selection
        header.object = (
            f"<div class='fse-selection-header'><b>{len(rows):,}</b> of {len(data):,} images "
            "selected</div>" if len(rows)
            else placeholder("Select images with the lasso or box tool on the map.")
        )
        space = SpaceKey.parse(state.space)
        counts.object = value_counts_html(data, state.color_by, rows, space) if len(rows) else ""
        enrichment.object = enrichment_html(data, space, rows)
        page.value = 0
        show_page()

    state.param.watch(show, ["selection", "color_by", "space"])
    page.param.watch(show_page, "value")
    show()
    return pn.Column(
        select_by_value(data, state),
        pn.Row(header, clear, export("csv"), export("parquet"), sizing_mode="stretch_width"),
        counts,
        enrichment,
        pn.Row(previous, position, following),
        grid,
        sizing_mode="stretch_width",
    )
