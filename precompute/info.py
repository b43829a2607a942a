"""`precompute info`: one JSON object describing what a store holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from precompute.progress import read_progress
from precompute.store import FORMAT_VERSION, SpaceKey, Store, read_json


def describe_store(store: Store) -> dict[str, Any]:
    """Counts, attributes, feature spaces, projections (with their trust scores), indexes,
    thumbnails, the test metrics of fine-tuned models, clusters and separability scores of
    `store`, the work that interrupted runs left unfinished, and the latest run's progress."""
    images = store.meta(store.images_path)
    info: dict[str, Any] = {
        "store": str(store.root.resolve()),
        "format_version": (read_json(store.manifest_path) or {}).get("format_version",
                                                                     FORMAT_VERSION),
        "written_by": (read_json(store.manifest_path) or {}).get("written_by", {}),
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
    scored = (store.meta(store.separability_path()) or {}).get("scored", {})
    for space in store.spaces():
        embeddings = store.meta(store.embeddings_path(space))
        index = store.meta(store.index_path(space))
        info["layers"][str(space)] = {
            "shape": [embeddings["count"], embeddings["dim"]],
            "backbone": embeddings["backbone"],
            "weights": embeddings["weights"],
            "projections": {method: projection_trust(store, space, method)
                            for method in store.projection_methods(space)},
            "index": index["kind"] if index else None,
            "separability_scored_on": scored.get(str(space)),
        }
    for model in store.finetuned_models():
        info["metrics"][model] = run_metrics(store, model)
    info["clusters"] = {
        str(space): {"k": meta["k"], "silhouette": meta["silhouette"], "method": meta["method"]}
        for space in store.spaces()
        if (meta := store.meta(store.clusters_path(space))) is not None
    }
    quality = store.meta(store.quality_path())
    info["quality"] = {"space": quality["space"], **quality["counts"]} if quality else {}
    info["separability"] = separability_summary(store)
    info["unfinished"] = unfinished_work(store)
    info["build"] = build_state(store)
    return info


def build_state(store: Store) -> dict[str, Any]:
    """The latest run: `running`, `finished` or `stopped`, its stages done and still to come
    (empty for a store built before runs were recorded)."""
    progress = read_progress(store)
    if progress is None:
        return {}
    return {"state": progress.state, "finished": progress.finished, "left": progress.left,
            "started": progress.started, "updated": progress.updated}


def run_metrics(store: Store, model: str) -> dict[str, Any]:
    """A training run's scores: accuracy and F1 on its test images, or with folds their mean
    and standard deviation over the folds (every labelled image predicted out of fold)."""
    predictions = store.meta(store.predictions_path(model))
    metrics = predictions["metrics"]
    keys = ["accuracy", "f1_weighted", "f1_macro", "folds", "test_count"]
    if metrics.get("folds", 1) > 1:
        keys += ["accuracy_std", "f1_weighted_std", "f1_macro_std"]
    return {"target": predictions["target"], "mode": predictions["mode"],
            **{key: metrics[key] for key in keys}}


def projection_trust(store: Store, space: SpaceKey, method: str) -> dict[str, float]:
    """How far a map keeps its layer's neighbourhoods: the scores in its sidecar (none for a
    map made before maps were scored, until the project stage runs again)."""
    trust = store.meta(store.projection_path(space, method)).get("trust", {})
    return {key: trust[key] for key in ("neighbour_preservation", "trustworthiness")
            if key in trust}


def unfinished_work(store: Store) -> list[dict[str, Any]]:
    """What interrupted runs left for the next run of their stage to continue: embedding
    passes (rows done of their block), torchrun parts not merged yet, training stopped after
    an epoch."""
    found: list[dict[str, Any]] = []
    for path in store.embed_progress_paths():
        progress = read_json(path) or {}
        start, stop = progress.get("recipe", {}).get("rows", (0, 0))
        found.append({"stage": "embed", "model": f"{path.parent.parent.name}/{path.parent.name}",
                      "file": str(path.relative_to(store.root)),
                      "rows_done": int(progress.get("rows_done", 0)), "rows": stop - start})
    for space, (complete, ranks) in store.unmerged_parts().items():
        found.append({"stage": "embed", "space": str(space), "parts_done": complete,
                      "parts": ranks})
    for model, fold in store.training_checkpoints():
        if store.meta(store.checkpoint_path(model, "best", fold)) is None:
            last = store.checkpoint_path(model, "last", fold)
            found.append({"stage": "train", "model": model, "epochs_done": _epochs_done(last),
                          **({"fold": fold} if fold else {})})
    return found


def _epochs_done(checkpoint: Path) -> int:
    """The last finished epoch recorded in a training checkpoint (memory-mapped: the weights
    are not read)."""
    import torch

    return int(torch.load(checkpoint, map_location="cpu", weights_only=True,
                          mmap=True)["progress"]["epoch"])


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
