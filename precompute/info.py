"""`precompute info`: one JSON object describing what a store holds."""

from __future__ import annotations

from typing import Any

from precompute.store import FORMAT_VERSION, Store, read_json


def describe_store(store: Store) -> dict[str, Any]:
    """Counts, attributes, feature spaces, projections, indexes, thumbnails, the test metrics
    of fine-tuned models, clusters and separability scores of `store`."""
    images = store.meta(store.images_path)
    info: dict[str, Any] = {
        "store": str(store.root.resolve()),
        "format_version": (read_json(store.manifest_path) or {}).get("format_version",
                                                                     FORMAT_VERSION),
        "images": images["count"] if images else 0,
        "rejected": {
            "count": images["rejected"] if images else 0,
            "reasons": images["reasons"] if images else {},
        },
        "attributes": {},
        "layers": {},
        "thumbnails": (store.meta(store.thumbs_path) or {}).get("count", 0),
        "metrics": {},
    }
    if images:
        table = store.read_images(list(images["attributes"]))
        info["attributes"] = {
            name: {"kind": kind, "values": int(table[name].nunique(dropna=True))}
            for name, kind in images["attributes"].items()
        }
    for space in store.spaces():
        embeddings = store.meta(store.embeddings_path(space))
        index = store.meta(store.index_path(space))
        info["layers"][str(space)] = {
            "shape": [embeddings["count"], embeddings["dim"]],
            "backbone": embeddings["backbone"],
            "weights": embeddings["weights"],
            "projections": store.projection_methods(space),
            "index": index["kind"] if index else None,
        }
    for model in store.finetuned_models():
        predictions = store.meta(store.predictions_path(model))
        metrics = predictions["metrics"]
        info["metrics"][model] = {
            "target": predictions["target"],
            **{key: metrics[key] for key in ("accuracy", "f1_weighted", "f1_macro", "test_count")},
        }
    info["clusters"] = {
        str(space): {"k": meta["k"], "silhouette": meta["silhouette"], "method": meta["method"]}
        for space in store.spaces()
        if (meta := store.meta(store.clusters_path(space))) is not None
    }
    info["separability"] = separability_summary(store)
    return info


def separability_summary(store: Store) -> dict[str, Any]:
    """{attribute (or "B | A" for B within A): {space: {metric: {value, baseline}}}}, rounded."""
    if store.meta(store.separability_path()) is None:
        return {}
    table = store.read_separability()
    summary: dict[str, Any] = {}
    for row in table.itertuples(index=False):
        name = f"{row.attribute} | {row.given}" if row.given else row.attribute
        cell = {"value": round(row.value, 3), "baseline": round(row.baseline, 3)}
        summary.setdefault(name, {}).setdefault(row.space, {})[row.metric] = cell
    return summary
