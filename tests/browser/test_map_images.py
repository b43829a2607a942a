"""Zoomed in on few points, the map shows the images themselves; the whole map stays dots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from precompute.store import SpaceKey
from tests.browser.explorer_page import ExplorerPage

pytestmark = pytest.mark.browser


def distinct_colours(pixels: np.ndarray) -> int:
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1])[:, :3], axis=0))


def test_zooming_in_shows_the_paintings_on_the_map(served_store, built_store, page):
    explorer = ExplorerPage(page, served_store, built_store).open()
    dots = distinct_colours(explorer.map_pixels())
    coords = explorer.data.coords(SpaceKey.parse(explorer.space), explorer.method)
    x, y = np.median(coords, axis=0)
    view = [round(float(v), 4) for v in (x - 0.6, x + 0.6, y - 0.6, y + 0.6)]
    explorer.open("?view=" + json.dumps(view).replace(" ", ""))
    explorer.page.wait_for_timeout(1_500)
    images = distinct_colours(explorer.map_pixels())
    assert images > 3 * dots, f"{images} colours zoomed in against {dots} for the dots"
