"""The legend: colour, value and count per category, or a colour bar for a numeric attribute.
Clicking a category isolates it on the map (the rest dimmed); shift- or ctrl-click adds or
removes one; clicking the only isolated value shows all again. Long legends get a search box.

The legend travels to the browser as data and is built there with `textContent`, so a value
from a dataset never enters the page as HTML (and Panel's sanitizer, which strips every
attribute from HTML strings, does not touch it).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import param
from panel.reactive import ReactiveHTML

from explorer.colours import (
    NUMERIC_CMAP,
    TOP_CATEGORIES,
    category_colours,
    isolated_codes,
    numeric_span,
)
from explorer.data import ExplorerData
from precompute.store import NUMERIC, SpaceKey

SEARCHABLE = 15  # legends with more values than this get a search box
# The browser-built components' one DOM helper (here and explorer/layer_strip.py): an element
# with a class and text set as text, never parsed as HTML.
MAKE_ELEMENT_JS = """
          const make = (tag, cls, text) => {
            const node = document.createElement(tag);
            if (cls) node.className = cls;
            if (text !== undefined) node.textContent = text;
            return node;
          };
"""


class Legend(ReactiveHTML):
    """The legend in the page, drawn from `content` (see `legend_content`); a click on a value
    goes to `on_pick(value, additive)`; the search box hides the values that do not match it,
    in the browser (no round trip per key)."""

    content = param.Dict(default={}, allow_refs=True, doc="what legend_content returns")

    _template = """
<div id="box" class="fse-legend-box">
  <div id="title" class="fse-legend-title"></div>
  <input id="search" class="fse-legend-search" type="search" placeholder="Find a value"
         style="display: none" oninput="${script('find')}"></input>
  <div id="entries" onclick="${_picked}"></div>
</div>"""
    _scripts = {
        "render": "self.draw()",
        "content": "self.draw()",
        "draw": """
          const legend = data.content;""" + MAKE_ELEMENT_JS + """
          title.textContent = legend.title || '';
          entries.replaceChildren();
          if (legend.bar) {
            const bar = make('div', 'fse-colour-bar');
            bar.style.background = `linear-gradient(to right, ${legend.bar.stops.join(', ')})`;
            const range = make('div', 'fse-legend-range');
            range.append(make('span', '', legend.bar.low), make('span', '', legend.bar.high));
            entries.append(bar, range);
          }
          for (const row of legend.rows || []) {
            const button = make('button', 'fse-legend-row' + (row.mark ? ' fse-' + row.mark : ''));
            button.type = 'button';
            button.value = row.value;
            const swatch = make('span', 'fse-swatch');
            swatch.style.background = row.colour;
            button.append(swatch, make('span', 'fse-legend-value', row.value),
                          make('span', 'fse-legend-count', row.count));
            entries.append(button);
          }
          for (const note of legend.notes || []) {
            entries.append(make('div', 'fse-legend-note', note));
          }
          search.style.display = legend.searchable ? 'block' : 'none';
          if (!legend.searchable) search.value = '';  // a hidden box must not hide rows
          self.find();""",
        "find": """
          const wanted = search.value.trim().toLowerCase();
          for (const row of entries.querySelectorAll('.fse-legend-row')) {
            row.style.display = row.value.toLowerCase().includes(wanted) ? '' : 'none';
          }""",
    }

    def __init__(self, on_pick, **params):
        super().__init__(**params)
        self._on_pick = on_pick

    def _picked(self, event) -> None:
        value = (event.data.get("target") or {}).get("value")
        if value is not None:  # a click between the rows has none
            additive = any(event.data.get(key) for key in ("shiftKey", "ctrlKey", "metaKey"))
            self._on_pick(value, additive)


def toggled(isolated: Sequence[str], value: str, additive: bool) -> list[str]:
    """The isolated values after a click on `value`: with `additive` (shift or ctrl) it is added
    or removed; otherwise it becomes the only one, or, if it already was, none is."""
    if additive:
        return [v for v in isolated if v != value] if value in isolated else [*isolated, value]
    return [] if list(isolated) == [value] else [value]


def legend_values(data: ExplorerData, attribute: str, space: str) -> list[str]:
    """The values the legend of `attribute` lists, which are the values that can be isolated
    (none for a numeric attribute)."""
    if data.kinds[attribute] == NUMERIC:
        return []
    values = data.colour_values(attribute, TOP_CATEGORIES, SpaceKey.parse(space))
    return [str(category) for category in values.cat.categories]


def legend_content(data: ExplorerData, attribute: str, space: str,
                   isolated: Sequence[str] = ()) -> dict[str, Any]:
    """The legend of `attribute` (in feature space `space`) over the whole store, as plain
    values: a title, a colour bar (numeric) or one row per category (value, colour, count,
    and whether it is isolated or dimmed), and notes."""
    key = SpaceKey.parse(space)
    if data.kinds[attribute] == NUMERIC:
        return {"title": attribute, **_colour_bar(data.column(attribute, key))}
    values = data.colour_values(attribute, TOP_CATEGORIES, key)
    counts = values.value_counts(sort=False)
    colours = category_colours(list(values.cat.categories))
    rows = [{"value": str(category), "colour": colours[category],
             "count": f"{int(counts[category]):,}", "mark": _mark(str(category), isolated)}
            for category in values.cat.categories]
    distinct = len(data.value_counts(attribute, key))
    notes = [f"{distinct} values; the {TOP_CATEGORIES} most frequent are coloured"
             ] if distinct > TOP_CATEGORIES else []
    notes.append(f"Showing {', '.join(isolated)}; shift-click one to remove it, click the last "
                 "again to show all" if isolated
                 else "Click a value to isolate it on the map; shift-click adds one")
    return {"title": attribute, "rows": rows, "notes": notes,
            "searchable": len(rows) > SEARCHABLE}


ISOLATION_NOTE_CSS = """
.fse-isolation-note { font-size: 12px; background: #eef3f7; border-left: 3px solid #2f6690;
                      padding: 4px 8px; }
"""


def isolation_note(data: ExplorerData, attribute: str, space: str, isolated: Sequence[str],
                   selection: np.ndarray) -> str:
    """HTML under the legend while values are isolated and images selected: how many of the
    selected images have an isolated value, which are the points the map shows in colour (with
    none, every point is grey, and this says why). Empty otherwise."""
    if not isolated or not len(selection) or data.kinds[attribute] == NUMERIC:
        return ""
    values = data.colour_values(attribute, TOP_CATEGORIES, SpaceKey.parse(space))
    wanted = isolated_codes(values.cat.categories, isolated)
    shown = int(np.isin(values.cat.codes.to_numpy()[selection], wanted).sum())
    names = html.escape(" or ".join(isolated))
    if not shown:
        line = (f"None of the {len(selection):,} selected images is {names}: every point is "
                "grey. Click the isolated value again, or clear the selection, to see more.")
    else:
        verb = "is" if shown == 1 else "are"
        line = (f"{shown:,} of the {len(selection):,} selected images {verb} {names}: those "
                "are the points in colour.")
    return f"<div class='fse-isolation-note'>{line}</div>"


def _mark(value: str, isolated: Sequence[str]) -> str:
    if not isolated:
        return ""
    return "isolated" if value in isolated else "dimmed"


def _colour_bar(values: pd.Series) -> dict[str, Any]:
    """A gradient over the same span the map's colours use, and the count without a value."""
    if values.dropna().empty:
        return {"notes": ["no values"]}
    low, high = numeric_span(values)
    stops = [NUMERIC_CMAP[i] for i in np.linspace(0, len(NUMERIC_CMAP) - 1, 8, dtype=int)]
    missing = int(values.isna().sum())
    return {"bar": {"stops": stops, "low": f"{low:g}", "high": f"{high:g}"},
            "notes": [f"{missing:,} without a value"] if missing else []}


LEGEND_CSS = """
.fse-legend-title { font-weight: 600; margin-bottom: 4px; }
.fse-legend-row { display: flex; align-items: center; gap: 6px; font-size: 13px; width: 100%;
  border: 0; background: none; padding: 1px 2px; text-align: left; cursor: pointer;
  font-family: inherit; color: inherit; border-radius: 3px; }
.fse-legend-row:hover { background: #eef3f7; }
.fse-legend-row * { pointer-events: none; }
.fse-legend-row.fse-dimmed { opacity: 0.4; }
.fse-legend-row.fse-isolated { background: #e3ecf3; font-weight: 600; }
.fse-legend-search { width: 100%; box-sizing: border-box; margin: 2px 0 6px; padding: 3px 6px;
  font: inherit; font-size: 13px; }
.fse-swatch { width: 12px; height: 12px; border-radius: 2px; flex: none; }
.fse-legend-value { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.fse-legend-count { color: #666; font-variant-numeric: tabular-nums; }
.fse-legend-note { color: #666; font-size: 12px; margin-top: 4px; }
.fse-colour-bar { height: 12px; border-radius: 2px; }
.fse-legend-range { display: flex; justify-content: space-between; font-size: 12px; }
"""
