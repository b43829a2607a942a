"""The view in the URL: feature space, method, colour, isolated legend values, filters,
viewport, selection, focus and the compare view's second map live in the query string
(through Panel's `Location.sync`), so a view can be shared as a link. Images are named by
sample id, not by row, so a link still points at the same images after the store is rebuilt
with images added or removed."""

from __future__ import annotations

import base64
import json
import urllib.parse
import zlib

import numpy as np
import panel as pn
import param

from explorer.data import ExplorerData
from explorer.state import ExplorerState

MAX_SELECTION_CHARS = 60_000  # longer selections are left out of the link (browsers cap URLs)
ENCODE_CHUNK = 1 << 16  # bytes of id deltas compressed between checks of the output's length


def encode_ids(ids: np.ndarray, max_chars: int | None = None) -> str | None:
    """Sample ids (as the unsigned 64-bit numbers of their hex text) as a short URL-safe
    string: sorted, deltas, zlib, base64. None when longer than `max_chars`: compression stops
    as soon as its output passes that, so a selection too large for a link costs a fraction of
    its encoding. (zlib's default level: its highest took 2 s on 400,000 rows for 10 % fewer
    characters.)"""
    ids = np.unique(np.asarray(ids, dtype=np.uint64))
    if not len(ids):
        return ""
    limit = float("inf") if max_chars is None else max_chars
    raw = memoryview(np.diff(ids, prepend=np.uint64(0)).tobytes())
    compressor, parts, size = zlib.compressobj(), [], 0
    for start in range(0, len(raw), ENCODE_CHUNK):
        parts.append(compressor.compress(raw[start:start + ENCODE_CHUNK]))
        size += len(parts[-1])
        if size * 4 / 3 > limit:  # base64 writes 4 characters for 3 bytes
            return None
    parts.append(compressor.flush())
    text = base64.urlsafe_b64encode(b"".join(parts)).decode("ascii")
    return text if len(text) <= limit else None


def decode_ids(text: str) -> np.ndarray:
    """The inverse of `encode_ids` (bad input gives none)."""
    if not text:
        return np.empty(0, dtype=np.uint64)
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(text.encode("ascii")))
        return np.cumsum(np.frombuffer(raw, dtype=np.uint64), dtype=np.uint64)
    except (ValueError, zlib.error):
        return np.empty(0, dtype=np.uint64)


class ViewLink(param.Parameterized):
    """The state as query-string values. Untyped: Panel parses query values as JSON (numbers,
    booleans, lists, objects), and apply_link checks each one."""

    space = param.Parameter(default=None)
    method = param.Parameter(default=None)
    color = param.Parameter(default=None)
    isolate = param.Parameter(default=None)
    filters = param.Parameter(default=None)
    search = param.Parameter(default=None)
    hide = param.Parameter(default=None)
    view = param.Parameter(default=None)
    sel = param.Parameter(default=None)
    focus = param.Parameter(default=None)
    compare = param.Parameter(default=None)  # the second map's space, when comparing
    compare_method = param.Parameter(default=None)


def link_to_url(state: ExplorerState, data: ExplorerData) -> ViewLink | None:
    """Apply the URL's view to `state`, then keep the URL following the state. None outside a
    served page (no URL)."""
    location = pn.state.location
    if location is None:
        return None
    link = ViewLink()
    location.sync(link)
    # Panel reads query values as Python literals, which would turn an all-digit sample id
    # into a number: the focus is read from the raw query string.
    focus = urllib.parse.parse_qs(location.search.lstrip("?")).get("focus", [""])[0]
    apply_link(link, state, data, focus)

    def follow(*_events) -> None:
        link.param.update(**link_values(state, data))

    def follow_selection(*_events) -> None:  # encoded when it changes, not at every pan
        link.sel = selection_value(state, data)

    def follow_selection_later(*_events) -> None:
        """On the server's next turn: a lasso's count reaches the page first (encoding 150,000
        ids took 47 ms at 1M points)."""
        pn.state.execute(follow_selection, schedule=True)

    state.param.watch(
        follow,
        ["space", "method", "color_by", "isolated", "filters", "search", "hide_filtered",
         "x_range", "y_range", "focus", "compare", "space_b", "method_b"],
    )
    state.param.watch(follow_selection_later, "selection")
    follow()
    follow_selection()
    # The browser's location replaces ours when the page connects: write the view once loaded.
    pn.state.onload(lambda: location.update_query(**{
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in {**link_values(state, data), "sel": link.sel}.items()
        if value is not None
    }))
    return link


def selection_value(state: ExplorerState, data: ExplorerData) -> str | None:
    """The link's `sel`: the selected images' ids, or None when too long for a link."""
    return encode_ids(data.id_numbers[state.selection], MAX_SELECTION_CHARS) or None


def link_values(state: ExplorerState, data: ExplorerData) -> dict[str, object]:
    """The state's query-string values but the selection's (None: left out of the URL)."""
    view = None  # lists and objects go in as JSON, which Location parses back on reading
    if state.x_range and state.y_range:
        view = json.dumps([round(float(v), 5) for v in (*state.x_range, *state.y_range)])
    filters = {k: v for k, v in state.filters.items() if v}
    return {
        "space": state.space,
        "method": state.method,
        "color": state.color_by,
        "isolate": json.dumps(state.isolated) if state.isolated else None,
        "filters": json.dumps(filters) if filters else None,
        "search": state.search or None,
        "hide": state.hide_filtered or None,
        "view": view,
        "focus": None if state.focus is None else data.sample_id(state.focus),
        "compare": state.space_b if state.compare else None,
        "compare_method": state.method_b if state.compare else None,
    }


def apply_link(link: ViewLink, state: ExplorerState, data: ExplorerData, focus: str) -> None:
    """Set the state from the link's values (and the focused image's sample id), ignoring any
    that do not fit this store."""
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
        changes["selection"] = data.rows_of_ids(decode_ids(link.sel))
    focused = data.rows_of_ids(data.id_number(focus))
    if len(focused):
        changes["focus"] = int(focused[0])
    state.param.update(**changes)
    if link.method in _choices(state.param.method):  # the space's methods are known now
        state.method = link.method
    if link.compare in _choices(state.param.space_b):
        state.param.update(space_b=link.compare, compare=True)
        if link.compare_method in _choices(state.param.method_b):
            state.method_b = link.compare_method
    if isinstance(link.isolate, list):  # after the colour, whose change clears it
        state.isolated = [str(value) for value in link.isolate]


def _choices(parameter: param.Selector) -> list:
    objects = parameter.objects
    return list(objects.values()) if isinstance(objects, dict) else list(objects)
