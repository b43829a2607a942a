"""HTML for one image: its thumbnail (a data URI read from the store by row) and its attributes.

Every dataset value is HTML-escaped here, the one place image descriptions become markup.
"""

from __future__ import annotations

import html

from explorer.data import ExplorerData
from precompute.store import SpaceKey

CARD_CSS = """
.fse-card { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start;
            font-size: 13px; }
.fse-card img { width: 128px; height: auto; border-radius: 4px; background: #eee; }
.fse-card table { border-collapse: collapse; flex: 1 1 220px; }
.fse-card th { text-align: left; color: #666; font-weight: normal; padding-right: 8px;
               width: 40%; overflow-wrap: anywhere; }
.fse-card td { overflow-wrap: anywhere; }
.fse-card.fse-compact img { width: 64px; }
.fse-card.fse-compact table { flex: 1 1 160px; }
.fse-placeholder { color: #888; font-size: 13px; }
.fse-shared { font-size: 13px; background: #eef3f7; border-left: 3px solid #2f6690;
              padding: 4px 8px; }
.fse-why-card { display: flex; flex-direction: column; gap: 6px; font-size: 13px; }
.fse-why-card img { width: 256px; border-radius: 4px; }
.fse-query-message { color: #b00020; font-size: 13px; }
.fse-tile { display: flex; flex-direction: column; align-items: center; width: 120px;
            font-size: 12px; }
.fse-tile img { width: 112px; height: 112px; object-fit: cover; border-radius: 4px; }
.fse-tile span { max-width: 116px; overflow: hidden; text-overflow: ellipsis;
                 white-space: nowrap; }
"""


def image_card(data: ExplorerData, row: int, space: SpaceKey | None = None,
               extra: dict[str, str] | None = None) -> str:
    """Thumbnail beside a table of the image's attributes (its cluster in `space`, and any
    `extra` lines)."""
    return _card(data, row, {**data.describe(row, space), **(extra or {})}, "fse-card")


def compact_card(data: ExplorerData, row: int, space: SpaceKey, color_by: str) -> str:
    """A small thumbnail beside the image's id and colour-by value: the clicked image above
    its neighbours, short so that they start in view (its full card is the hover card)."""
    fields = {"id": data.sample_id(row), color_by: data.describe(row, space)[color_by]}
    return _card(data, row, fields, "fse-card fse-compact")


def _card(data: ExplorerData, row: int, fields: dict[str, str], classes: str) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
        for name, value in fields.items()
    )
    return (
        f"<div class='{classes}' data-row='{int(row)}'>"
        f"<img src='{data.thumbnail_uri(row)}' alt='thumbnail of image {int(row)}'>"
        f"<table>{rows}</table></div>"
    )


def image_tile(data: ExplorerData, row: int, caption: str) -> str:
    """A square thumbnail with a one-line caption, for grids."""
    return (
        f"<div class='fse-tile' data-row='{int(row)}'>"
        f"<img src='{data.thumbnail_uri(row)}' alt=''>"
        f"<span title='{html.escape(caption, quote=True)}'>{html.escape(caption)}</span></div>"
    )


def neighbour_tile(data: ExplorerData, row: int, similarity: float, space: SpaceKey,
                   color_by: str) -> str:
    """A neighbour's tile: its similarity to the query and its colour-by value."""
    return image_tile(data, row, f"{similarity:.3f} · {data.describe(row, space)[color_by]}")


def placeholder(text: str) -> str:
    """A grey line of guidance where a panel has nothing to show yet."""
    return f"<div class='fse-placeholder'>{html.escape(text)}</div>"
