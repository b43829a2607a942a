"""The view in the URL: feature space, method, colour, filters, viewport, selection and focus
live in the query string (through Panel's `Location.sync`), so a view can be shared as a link."""

from __future__ import annotations

import base64
import json
import zlib

import numpy as np
import panel as pn
import param

from explorer.state import ExplorerState

MAX_SELECTION_CHARS = 60_000  # longer selections are left out of the link (browsers cap URLs)


def encode_rows(rows: np.ndarray) -> str:
    """Sorted row numbers as a short URL-safe string: deltas, zlib, base64."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if not len(rows):
        return ""
    deltas = np.diff(rows, prepend=0).astype(np.uint32)
    return base64.urlsafe_b64encode(zlib.compress(deltas.tobytes(), 9)).decode("ascii")


def decode_rows(text: str, count: int) -> np.ndarray:
    """The inverse of `encode_rows`, keeping only rows below `count` (bad input gives none)."""
    if not text:
        return np.empty(0, dtype=np.int64)
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(text.encode("ascii")))
        rows = np.cumsum(np.frombuffer(raw, dtype=np.uint32).astype(np.int64))
    except (ValueError, zlib.error):
        return np.empty(0, dtype=np.int64)
    return rows[(rows >= 0) & (rows < count)]


class ViewLink(param.Parameterized):
    """The state as query-string values. Untyped: Panel parses query values as JSON (numbers,
    booleans, lists, objects), and apply_link checks each one."""

    space = param.Parameter(default=None)
    method = param.Parameter(default=None)
    color = param.Parameter(default=None)
    filters = param.Parameter(default=None)
    search = param.Parameter(default=None)
    hide = param.Parameter(default=None)
    view = param.Parameter(default=None)
    sel = param.Parameter(default=None)
    focus = param.Parameter(default=None)


def link_to_url(state: ExplorerState, count: int) -> ViewLink | None:
    """Apply the URL's view to `state`, then keep the URL following the state. None outside a
    served page (no URL)."""
    location = pn.state.location
    if location is None:
        return None
    link = ViewLink()
    location.sync(link)
    apply_link(link, state, count)
    follow = lambda *_events: link.param.update(**link_values(state))  # noqa: E731
    state.param.watch(
        follow,
        ["space", "method", "color_by", "filters", "search", "hide_filtered", "x_range",
         "y_range", "selection", "focus"],
    )
    follow()
    # The browser's location replaces ours when the page connects: write the view once loaded.
    pn.state.onload(lambda: location.update_query(**{
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in link_values(state).items() if value is not None
    }))
    return link


def link_values(state: ExplorerState) -> dict[str, object]:
    """The state's query-string values (None: left out of the URL)."""
    view = None  # lists and objects go in as JSON, which Location parses back on reading
    if state.x_range and state.y_range:
        view = json.dumps([round(float(v), 5) for v in (*state.x_range, *state.y_range)])
    selection = encode_rows(state.selection)
    filters = {k: v for k, v in state.filters.items() if v}
    return {
        "space": state.space,
        "method": state.method,
        "color": state.color_by,
        "filters": json.dumps(filters) if filters else None,
        "search": state.search or None,
        "hide": state.hide_filtered or None,
        "view": view,
        "sel": selection if 0 < len(selection) <= MAX_SELECTION_CHARS else None,
        "focus": state.focus,
    }


def apply_link(link: ViewLink, state: ExplorerState, count: int) -> None:
    """Set the state from the link's values, ignoring any that do not fit this store."""
    changes: dict[str, object] = {}
    if link.space in _choices(state.param.space):
        changes["space"] = link.space
    if link.color in _choices(state.param.color_by):
        changes["color_by"] = link.color
    if isinstance(link.filters, dict):
        changes["filters"] = {
            str(k): [str(v) for v in values]
            for k, values in link.filters.items() if isinstance(values, list)
        }
    if isinstance(link.search, (str, int, float)):
        changes["search"] = str(link.search)
    changes["hide_filtered"] = link.hide is True
    if isinstance(link.view, list) and len(link.view) == 4:
        try:
            x0, x1, y0, y1 = (float(v) for v in link.view)
            changes.update(x_range=(x0, x1), y_range=(y0, y1))
        except (TypeError, ValueError):
            pass
    if isinstance(link.sel, str):
        changes["selection"] = decode_rows(link.sel, count)
    if isinstance(link.focus, int) and 0 <= link.focus < count:
        changes["focus"] = link.focus
    state.param.update(**changes)
    if link.method in _choices(state.param.method):  # the space's methods are known now
        state.method = link.method


def _choices(parameter: param.Selector) -> list:
    objects = parameter.objects
    return list(objects.values()) if isinstance(objects, dict) else list(objects)
