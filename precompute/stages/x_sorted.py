"""projections/by-x: each map's points sorted by x with their rows, so the explorer served
through Dask reads only the slice of the file a view spans (explorer/dask_points.py) instead of
every point of the map on every render. Rewritten whenever its projection is."""

from __future__ import annotations

import numpy as np

from precompute.store import X_SORTED_DTYPE, SpaceKey, Store


def write_x_sorted(store: Store, space: SpaceKey, method: str, force: bool = False) -> bool:
    """Write the x-sorted copy of one projection unless it is current; whether it was written."""
    projection = store.meta(store.projection_path(space, method))
    recipe = {"projection": projection["recipe"], "projection_written": projection["written"]}
    path = store.x_sorted_path(space, method)
    if not force and store.is_current(path, recipe):
        return False
    xy = store.load_projection(space, method)
    order = np.argsort(xy[:, 0], kind="stable")
    points = np.empty(len(order), dtype=X_SORTED_DTYPE)
    points["x"], points["y"], points["row"] = xy[order, 0], xy[order, 1], order
    path.parent.mkdir(parents=True, exist_ok=True)
    store.write_array(path, points)
    store.commit(path, recipe, count=len(points))
    return True
