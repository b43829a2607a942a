"""Colours for categories (distinct, stable per category order) and for numeric attributes."""

from __future__ import annotations

import colorcet

from explorer.data import OTHER
from precompute.store import MISSING

GREY_OTHER = "#9e9e9e"
GREY_MISSING = "#d0d0d0"
NUMERIC_CMAP = list(colorcet.palette["bmy"])
TOP_CATEGORIES = 48  # categories coloured individually; the rest share the grey of OTHER


def category_colours(categories: list[str]) -> dict[str, str]:
    """A colour per category: glasbey's distinct colours, greys for OTHER and MISSING."""
    palette = colorcet.palette["glasbey_category10"]
    colours, used = {}, 0
    for category in categories:
        if category == OTHER:
            colours[category] = GREY_OTHER
        elif category == MISSING:
            colours[category] = GREY_MISSING
        else:
            colours[category] = palette[used % len(palette)]
            used += 1
    return colours
