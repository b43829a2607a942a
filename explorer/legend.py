"""The legend: colour, value and count per category, or a colour bar for a numeric attribute.

Values come from datasets, so every one is HTML-escaped before it enters the page.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from explorer.colours import NUMERIC_CMAP, TOP_CATEGORIES, category_colours, numeric_span
from explorer.data import ExplorerData
from precompute.store import NUMERIC, SpaceKey


def legend_html(data: ExplorerData, attribute: str, space: str) -> str:
    """HTML for the legend of `attribute` (in feature space `space`) over the whole store."""
    title = f"<div class='fse-legend-title'>{html.escape(attribute)}</div>"
    key = SpaceKey.parse(space)
    if data.kinds[attribute] == NUMERIC:
        return title + _colour_bar(data.column(attribute, key))
    values = data.colour_values(attribute, TOP_CATEGORIES, key)
    counts = values.value_counts(sort=False)
    colours = category_colours(list(values.cat.categories))
    distinct = len(data.value_counts(attribute, key))
    rows = "".join(
        "<div class='fse-legend-row'>"
        f"<span class='fse-swatch' style='background:{colours[category]}'></span>"
        f"<span class='fse-legend-value'>{html.escape(str(category))}</span>"
        f"<span class='fse-legend-count'>{int(counts[category]):,}</span></div>"
        for category in values.cat.categories
    )
    note = (
        f"<div class='fse-legend-note'>{distinct} values; the {TOP_CATEGORIES} most frequent "
        "are coloured</div>"
        if distinct > TOP_CATEGORIES
        else ""
    )
    return title + rows + note


def _colour_bar(values: pd.Series) -> str:
    """A gradient over the same span the map's colours use, and the count without a value."""
    if values.dropna().empty:
        return "<div class='fse-legend-note'>no values</div>"
    low, high = numeric_span(values)
    stops = ", ".join(NUMERIC_CMAP[i] for i in np.linspace(0, len(NUMERIC_CMAP) - 1, 8, dtype=int))
    missing = int(values.isna().sum())
    return (
        f"<div class='fse-colour-bar' style='background:linear-gradient(to right, {stops})'>"
        "</div><div class='fse-legend-range'>"
        f"<span>{low:g}</span><span>{high:g}</span></div>"
        + (f"<div class='fse-legend-note'>{missing:,} without a value</div>" if missing else "")
    )


LEGEND_CSS = """
.fse-legend-title { font-weight: 600; margin-bottom: 4px; }
.fse-legend-row { display: flex; align-items: center; gap: 6px; font-size: 13px; }
.fse-swatch { width: 12px; height: 12px; border-radius: 2px; flex: none; }
.fse-legend-value { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.fse-legend-count { color: #666; font-variant-numeric: tabular-nums; }
.fse-legend-note { color: #666; font-size: 12px; margin-top: 4px; }
.fse-colour-bar { height: 12px; border-radius: 2px; }
.fse-legend-range { display: flex; justify-content: space-between; font-size: 12px; }
"""
