"""Colours for categories (distinct, stable per category order) and for numeric attributes."""

from __future__ import annotations

import colorcet
import numpy as np
import pandas as pd

from explorer.data import OTHER
from precompute.store import MISSING

GREY_OTHER = "#9e9e9e"
GREY_MISSING = "#d0d0d0"
GREY_FILTERED = "#e4e4e4"
FADED_GREY = "#bbbbbb"  # points behind a selection or an isolated legend value
FADED_ALPHA = 90  # and their alpha at most (of 255)
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


def isolated_codes(categories: pd.Index, isolated: tuple[str, ...] | list[str]) -> list[int]:
    """The category codes of the isolated values (the map draws their points in colour)."""
    return [code for code, name in enumerate(categories) if str(name) in isolated]


def label_ink(shares: np.ndarray, dark_at_top: bool) -> list[str]:
    """Text colours readable on heatmap cells at `shares` (0-1 along the colour map): white on
    the dark end, near-black on the light end. `dark_at_top`: the map's high end is dark
    (Blues), not light (viridis)."""
    shares = np.nan_to_num(np.asarray(shares, dtype=float))
    dark = shares > 0.5 if dark_at_top else shares < 0.6
    return np.where(dark, "#ffffff", "#1a1a1a").tolist()


def numeric_span(values: pd.Series) -> tuple[float, float]:
    """The range the colour bar spans: the attribute's minimum and maximum."""
    present = values.dropna()
    if present.empty:
        return (0.0, 1.0)
    low, high = float(present.min()), float(present.max())
    return (low, high if high > low else low + 1.0)


def numeric_colours(values: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """Hex colour per value on NUMERIC_CMAP over `span`; missing values grey."""
    scaled = (np.asarray(values, dtype=float) - span[0]) / (span[1] - span[0])
    index = np.clip(np.nan_to_num(scaled) * (len(NUMERIC_CMAP) - 1), 0, len(NUMERIC_CMAP) - 1)
    colours = np.array(NUMERIC_CMAP, dtype=object)[index.astype(int)]
    return np.where(np.isnan(scaled), GREY_MISSING, colours)
