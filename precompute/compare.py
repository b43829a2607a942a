"""`precompute compare`: the training runs of a store side by side (runs × accuracy ± std,
weighted F1 ± std, macro F1, training time, images/s, device), from their predictions' sidecars.
The Metrics tab shows the same table."""

from __future__ import annotations

import pandas as pd

from precompute.store import Store

COLUMNS = ["run", "backbone", "mode", "target", "folds", "images", "accuracy", "accuracy_std",
           "f1_weighted", "f1_weighted_std", "f1_macro", "train_seconds", "images_per_s",
           "device"]


def runs_table(store: Store) -> pd.DataFrame:
    """One row per finished training run, best accuracy first; `_std` columns are 0 without
    folds (one test split)."""
    rows = []
    for model in store.finetuned_models():
        meta = store.meta(store.predictions_path(model))
        metrics = meta["metrics"]
        seconds = meta["train_seconds"]
        rows.append({
            "run": model, "backbone": model.partition("/")[0], "mode": meta["mode"],
            "target": meta["target"], "folds": metrics["folds"], "images": metrics["test_count"],
            "accuracy": metrics["accuracy"], "accuracy_std": metrics.get("accuracy_std", 0.0),
            "f1_weighted": metrics["f1_weighted"],
            "f1_weighted_std": metrics.get("f1_weighted_std", 0.0),
            "f1_macro": metrics["f1_macro"], "train_seconds": seconds,
            "images_per_s": meta["images_seen"] / seconds if seconds else float("nan"),
            "device": meta["device"],
        })
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["target", "accuracy"], ascending=[True, False], ignore_index=True)


def mean_spread(mean: float, std: float, folds: int) -> str:
    """A score as `mean ± std` over folds, or alone from one test split."""
    return f"{mean:.3f} ± {std:.3f}" if folds > 1 else f"{mean:.3f}"


def format_table(table: pd.DataFrame) -> str:
    """The runs as an aligned plain-text table, scores as mean ± std."""
    if table.empty:
        return ("no finished training runs in this store; set [train] target and run "
                "`precompute train`")

    shown = pd.DataFrame({
        "run": table["run"], "target": table["target"],
        "scored on": [f"{n} images, {f}-fold" if f > 1 else f"{n} test images"
                      for n, f in zip(table["images"], table["folds"], strict=True)],
        "accuracy": [mean_spread(m, s, f) for m, s, f in
                     zip(table["accuracy"], table["accuracy_std"], table["folds"], strict=True)],
        "F1 weighted": [mean_spread(m, s, f) for m, s, f in zip(
            table["f1_weighted"], table["f1_weighted_std"], table["folds"], strict=True)],
        "F1 macro": table["f1_macro"].map("{:.3f}".format),
        "training": table["train_seconds"].map("{:.1f} s".format),
        "images/s": table["images_per_s"].map("{:.0f}".format),
        "device": table["device"],
    })
    return shown.to_string(index=False)
