"""Images on the map: when a view holds few enough points, each image's thumbnail (from the
store, never from its path) is pasted at its point, framed in its colour, the way PixPlot and
the TensorFlow Embedding Projector show sprites. Drawn on the server into one RGBA image, like
the rest of the map, so the page receives one picture, not hundreds."""

from __future__ import annotations

import numpy as np

from explorer.colours import FADED_ALPHA
from explorer.data import ExplorerData
from explorer.point_table import rgb

THUMBNAIL_LIMIT = 300  # at most this many points in view: draw their thumbnails
SIDES = (24, 32, 48, 64, 96)  # a thumbnail's side on screen, px: the largest that leaves room
FRAME = 2  # px of the point's colour around each thumbnail
ROOM = 0.9  # each thumbnail takes at most this share of the view's area per point, sqrt'd


def thumbnail_side(columns: np.ndarray, lines: np.ndarray, width: int, height: int) -> int:
    """The thumbnails' side for points at screen `columns` and `lines` in a `width` × `height`
    view: the largest of SIDES not above the side of an equal share of the area they occupy
    (at least an eighth of the view), so they overlap little on average."""
    spread = np.ptp(np.clip(columns, 0, width)) * np.ptp(np.clip(lines, 0, height)) if len(
        columns) else 0.0
    area = max(float(spread), width * height / 8)
    share = (ROOM * area / max(len(columns), 1)) ** 0.5
    fitting = [side for side in SIDES if side <= share]
    return fitting[-1] if fitting else SIDES[0]


def thumbnail_image(data: ExplorerData, rows: np.ndarray, x: np.ndarray, y: np.ndarray,
                    colours: np.ndarray, inside: np.ndarray, highlighted: np.ndarray | None,
                    x_range: tuple[float, float], y_range: tuple[float, float],
                    width: int, height: int) -> np.ndarray:
    """An RGBA image (rows from the top) of the view: the thumbnail of each of `rows` centred
    on its point (`x`, `y` in map coordinates), framed in its colour (`colours`, hex). The
    images outside the filter (`inside` false) and, with `highlighted` (a selection, isolated
    values), the others are faded and drawn first."""
    canvas = np.zeros((height, width, 4), dtype=np.uint8)
    columns = (np.asarray(x) - x_range[0]) / (x_range[1] - x_range[0]) * width
    lines = (y_range[1] - np.asarray(y)) / (y_range[1] - y_range[0]) * height
    side = thumbnail_side(columns, lines, width, height)
    strong = inside if highlighted is None else inside & np.isin(rows, highlighted)
    for i in np.argsort(strong, kind="stable"):  # faded first, the highlighted on top
        pixels = data.thumbnail_pixels(int(rows[i]), side - 2 * FRAME)
        framed = np.empty((pixels.shape[0] + 2 * FRAME, pixels.shape[1] + 2 * FRAME, 4),
                          dtype=np.uint8)
        framed[..., :3] = rgb(colours[i])
        framed[FRAME:-FRAME, FRAME:-FRAME, :3] = pixels
        framed[..., 3] = 255 if strong[i] else FADED_ALPHA
        _paste(canvas, framed, int(round(columns[i])), int(round(lines[i])))
    return canvas


def _paste(canvas: np.ndarray, tile: np.ndarray, centre_x: int, centre_y: int) -> None:
    """`tile` over `canvas` centred at (centre_x, centre_y), clipped to the canvas, composited
    "over" what lies beneath (a faded tile keeps its colours, lighter, over the background)."""
    top, left = centre_y - tile.shape[0] // 2, centre_x - tile.shape[1] // 2
    y0, x0 = max(top, 0), max(left, 0)
    y1 = min(top + tile.shape[0], canvas.shape[0])
    x1 = min(left + tile.shape[1], canvas.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    part = tile[y0 - top:y1 - top, x0 - left:x1 - left]
    below = canvas[y0:y1, x0:x1]
    alpha = part[..., 3:4].astype(np.float32) / 255
    beneath = below[..., 3:4].astype(np.float32) / 255 * (1 - alpha)
    total = alpha + beneath
    colour = (part[..., :3] * alpha + below[..., :3] * beneath) / np.maximum(total, 1e-6)
    below[..., :3] = colour.astype(np.uint8)
    below[..., 3:4] = (total * 255).round().astype(np.uint8)
