"""projections/by-x: each map's points in blocks of x, each block in order of y, with their
rows, so the explorer served through Dask aggregates only the blocks a view overlaps, and of
each only the points in the view's range of y (explorer/dask_points.py), instead of every point
of the map on every render. Rewritten whenever its projection is."""

from __future__ import annotations

import numpy as np

from precompute.store import X_BLOCK_ROWS, X_SORTED_DTYPE, SpaceKey, Store


def x_sorted_recipe(store: Store, space: SpaceKey, method: str, block_rows: int) -> dict:
    """What the blocked copy of one projection is made from: the projection as it was
    written, and the block size."""
    projection = store.meta(store.projection_path(space, method))
    return {"projection": projection["recipe"], "projection_written": projection["written"],
            "block_rows": block_rows}


def write_x_sorted(store: Store, space: SpaceKey, method: str, force: bool = False,
                   block_rows: int = X_BLOCK_ROWS) -> bool:
    """Write the blocked copy of one projection unless it is current; whether it was written."""
    recipe = x_sorted_recipe(store, space, method, block_rows)
    path = store.x_sorted_path(space, method)
    if not force and store.is_current(path, recipe):
        return False
    xy = store.load_projection(space, method)
    order = np.argsort(xy[:, 0], kind="stable")
    starts = np.arange(0, len(order), block_rows)
    xs = xy[order, 0]
    bounds = np.column_stack([xs[starts], xs[np.minimum(starts + block_rows, len(xs)) - 1]])
    for start in starts:
        block = order[start:start + block_rows]
        order[start:start + block_rows] = block[np.argsort(xy[block, 1], kind="stable")]
    points = np.empty(len(order), dtype=X_SORTED_DTYPE)
    points["x"], points["y"], points["row"] = xy[order, 0], xy[order, 1], order
    path.parent.mkdir(parents=True, exist_ok=True)
    store.write_array(path, points)
    store.commit(path, recipe, count=len(points), block_rows=block_rows,
                 x_bounds=bounds.tolist())
    return True
