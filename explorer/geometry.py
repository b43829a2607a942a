"""Spatial look-ups on one 2D map: the point under the cursor, the points in a box or a lasso."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy.spatial import cKDTree

LASSO_GRID = 4096  # lasso polygons are rasterised at up to this many cells per side


class PointIndex:
    """Map coordinates (N × 2) with a k-d tree for nearest-point queries, built on first use."""

    def __init__(self, xy: np.ndarray):
        self.xy = np.ascontiguousarray(xy, dtype=np.float32)
        self._tree: cKDTree | None = None

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

    def in_box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Rows inside the axis-aligned box (corners in any order)."""
        (x0, x1), (y0, y1) = sorted((x0, x1)), sorted((y0, y1))
        x, y = self.xy[:, 0], self.xy[:, 1]
        return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))

    def in_polygon(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Rows inside a lasso polygon. The polygon is rasterised (Pillow) on a grid over its
        bounding box and each candidate point looks up its cell: one pass over the points
        whatever the polygon's length, exact to 1/4096 of the lasso's size."""
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if len(xs) < 3:
            return np.empty(0, dtype=np.int64)
        candidates = self.in_box(xs.min(), ys.min(), xs.max(), ys.max())
        if not len(candidates):
            return candidates
        width = max(xs.max() - xs.min(), 1e-12)
        height = max(ys.max() - ys.min(), 1e-12)
        scale = (LASSO_GRID - 1) / max(width, height)
        columns, rows = int(width * scale) + 1, int(height * scale) + 1
        mask = Image.new("1", (columns, rows), 0)
        vertices = list(zip((xs - xs.min()) * scale, (ys - ys.min()) * scale, strict=True))
        ImageDraw.Draw(mask).polygon(vertices, fill=1, outline=1)
        inside = np.asarray(mask, dtype=bool)
        points = self.xy[candidates]
        cx = np.clip(((points[:, 0] - xs.min()) * scale).round().astype(np.int64), 0, columns - 1)
        cy = np.clip(((points[:, 1] - ys.min()) * scale).round().astype(np.int64), 0, rows - 1)
        return candidates[inside[cy, cx]]
