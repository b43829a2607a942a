"""Spatial look-ups on one 2D map: the point under the cursor, the points in a box or a lasso."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy.spatial import cKDTree

LASSO_GRID = 2048  # lasso polygons are rasterised at up to this many cells per side


def sorted_slice(values: np.ndarray, low: float, high: float) -> slice:
    """The slice of `values` (sorted) from `low` to `high`, perhaps with a value at either end
    that an exact test would leave out. The bounds take the values' type: a float64 bound on
    float32 values makes `searchsorted` convert the whole array (16 ms at 10M points), and
    rounding a bound to the nearest float32 can add a value, never lose one."""
    kind = values.dtype.type
    return slice(int(np.searchsorted(values, kind(low), side="left")),
                 int(np.searchsorted(values, kind(high), side="right")))


class PointIndex:
    """Map coordinates (N × 2) with a k-d tree for nearest-point queries and the points sorted
    by x for boxes and lassos, each built on first use."""

    def __init__(self, xy: np.ndarray):
        self.xy = np.ascontiguousarray(xy, dtype=np.float32)
        self._tree: cKDTree | None = None
        self._by_x: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def tree(self) -> cKDTree:
        if self._tree is None:
            self._tree = cKDTree(self.xy, leafsize=32, balanced_tree=False, compact_nodes=False)
        return self._tree

    def nearest(self, x: float, y: float, radius: float, among: np.ndarray | None = None
                ) -> int | None:
        """The row nearest to (x, y) within `radius`, optionally only rows where `among` is
        True; None when there is none."""
        if among is None:
            distance, row = self.tree.query([x, y], k=1, distance_upper_bound=radius)
            return None if not np.isfinite(distance) else int(row)
        distances, rows = self.tree.query([x, y], k=64, distance_upper_bound=radius)
        for distance, row in zip(distances, rows, strict=True):
            if np.isfinite(distance) and among[row]:
                return int(row)
        return None

    @property
    def by_x(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row numbers sorted by x, with their x and y: a box or a lasso reads one slice."""
        if self._by_x is None:
            order = np.argsort(self.xy[:, 0], kind="stable")
            order = order.astype(np.int32) if len(order) < 2**31 else order
            self._by_x = (order, self.xy[order, 0], self.xy[order, 1])
        return self._by_x

    def in_box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Rows inside the axis-aligned box (corners in any order), sorted."""
        (x0, x1), (y0, y1) = sorted((x0, x1)), sorted((y0, y1))
        return np.sort(self._within(x0, y0, x1, y1)[0]).astype(np.int64)

    def _within(self, x0: float, y0: float, x1: float, y1: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows inside the box (x0 ≤ x1, y0 ≤ y1), in x order, with their x and y. Only the
        box's x slice is read: at 10M points a lasso's box is a small part of the map."""
        order, x, y = self.by_x
        within = sorted_slice(x, x0, x1)
        order, x, y = order[within], x[within], y[within]
        inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        return order[inside], x[inside], y[inside]

    def in_polygon(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Rows inside a lasso polygon, sorted. The polygon is rasterised (Pillow) on a grid over
        its bounding box and each point of the box looks up its cell: one pass over them
        whatever the polygon's length, exact to 1/2048 of the lasso's size (a fraction of a
        screen pixel)."""
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if len(xs) < 3:
            return np.empty(0, dtype=np.int64)
        candidates, px, py = self._within(xs.min(), ys.min(), xs.max(), ys.max())
        if not len(candidates):
            return np.empty(0, dtype=np.int64)
        width = max(xs.max() - xs.min(), 1e-12)
        height = max(ys.max() - ys.min(), 1e-12)
        scale = (LASSO_GRID - 1) / max(width, height)
        columns, rows = int(width * scale) + 1, int(height * scale) + 1
        mask = Image.new("1", (columns, rows), 0)
        vertices = list(zip((xs - xs.min()) * scale, (ys - ys.min()) * scale, strict=True))
        ImageDraw.Draw(mask).polygon(vertices, fill=1, outline=1)
        inside = np.asarray(mask, dtype=bool)
        cx = np.clip(((px - xs.min()) * scale).round().astype(np.int64), 0, columns - 1)
        cy = np.clip(((py - ys.min()) * scale).round().astype(np.int64), 0, rows - 1)
        return np.sort(candidates[inside[cy, cx]]).astype(np.int64)
