"""points.parquet: one table per feature space for other tools (pandas, DuckDB, Embedding
Atlas): `sample_id`, `<method>_x` and `<method>_y` for every finished projection, and `cluster`
once the space is clustered. Rewritten by the project and cluster stages whenever its inputs
change, so it never disagrees with the arrays the explorer reads."""

from __future__ import annotations

from precompute.store import ID_COLUMN, SpaceKey, Store


def write_points(store: Store, space: SpaceKey, force: bool = False) -> bool:
    """Write the space's points table unless it is current; returns whether it was written."""
    methods = store.projection_methods(space)
    clusters = store.meta(store.clusters_path(space))
    recipe = {
        "projections": {m: store.meta(store.projection_path(space, m))["recipe"]
                        for m in methods},
        "clusters": clusters["recipe"] if clusters else None,
        "images": store.images_meta()["fingerprint"],
    }
    path = store.points_path(space)
    if not methods or (not force and store.is_current(path, recipe)):
        return False
    table = store.read_images([ID_COLUMN])
    for method in methods:
        xy = store.load_projection(space, method)
        table[f"{method}_x"], table[f"{method}_y"] = xy[:, 0], xy[:, 1]
    if clusters:
        table["cluster"] = store.read_clusters(space)["cluster"].to_numpy()
    store.write_table(path, table)
    store.commit(path, recipe, methods=methods, clustered=clusters is not None)
    return True
