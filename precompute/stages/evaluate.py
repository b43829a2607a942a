"""Evaluate a fine-tuned model: a prediction for every image, and test-split metrics computed
with scikit-learn from the saved predictions.

Predictions come from the model's own penultimate embeddings in the store through its final
Linear layer, so the map, the predictions and the metrics describe exactly the same vectors, and
no second pass over the images is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from sklearn.utils.multiclass import unique_labels

from precompute.errors import StoreError
from precompute.nn.features import PENULTIMATE
from precompute.stats.split import TEST, UNLABELLED, Split
from precompute.store import SpaceKey, Store


@dataclass
class EvaluationSummary:
    accuracy: float
    f1_weighted: float
    f1_macro: float
    test_count: int
    skipped: bool = False

    def line(self) -> str:
        return (
            f"test accuracy {self.accuracy:.3f}, F1 weighted {self.f1_weighted:.3f}, "
            f"macro {self.f1_macro:.3f} ({self.test_count} images)"
        )


def classification_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy, weighted and macro F1, the per-class report and the confusion matrix over the
    classes that occur in `truth` or `predicted` (scikit-learn's default)."""
    labels = unique_labels(truth, predicted)
    report = classification_report(truth, predicted, output_dict=True, zero_division=0)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1_weighted": float(f1_score(truth, predicted, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "per_class": [
            {
                "class": str(label),
                "precision": float(report[label]["precision"]),
                "recall": float(report[label]["recall"]),
                "f1": float(report[label]["f1-score"]),
                "support": int(report[label]["support"]),
            }
            for label in labels
        ],
        "confusion": {
            "labels": [str(label) for label in labels],
            "matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
        },
        "test_count": int(len(truth)),
    }


def run_evaluate(store: Store, split: Split, model: str, force: bool = False) -> EvaluationSummary:
    """Write the predictions of `model` for every image and its test metrics, unless current."""
    space = SpaceKey(model, PENULTIMATE)
    embeddings = store.meta(store.embeddings_path(space))
    best_path = store.checkpoint_path(model, "best")
    trained = store.meta(best_path)
    if embeddings is None or trained is None:
        raise StoreError(f"{store.root} has no finished training and embeddings of {model}")
    path = store.predictions_path(model)
    recipe = {"embeddings": embeddings["recipe"], "split": split.recipe}
    if not force and store.is_current(path, recipe):
        metrics = store.meta(path)["metrics"]
        return EvaluationSummary(
            metrics["accuracy"], metrics["f1_weighted"], metrics["f1_macro"],
            metrics["test_count"], skipped=True,
        )

    checkpoint = torch.load(best_path, map_location="cpu", weights_only=True)
    weight = checkpoint["model"][f"{checkpoint['classifier']}.weight"].float()
    bias = checkpoint["model"][f"{checkpoint['classifier']}.bias"].float()
    vectors = torch.from_numpy(np.asarray(store.load_embeddings(space), dtype=np.float32))
    with torch.inference_mode():
        confidence, index = torch.softmax(vectors @ weight.T + bias, dim=1).max(dim=1)
    classes = np.asarray(checkpoint["classes"], dtype=object)
    predicted = classes[index.numpy()]
    correct = (split.parts != UNLABELLED) & (predicted == split.labels)
    store.write_table(
        path,
        pd.DataFrame(
            {
                "split": pd.array(split.parts, dtype="string"),
                "predicted": pd.array(predicted, dtype="string"),
                "confidence": confidence.numpy().astype(np.float32),
                "correct": correct.astype(bool),
            }
        ),
    )
    test = split.parts == TEST
    metrics = classification_metrics(split.labels[test], predicted[test])
    metrics["too_small"] = split.too_small
    store.commit(
        path, recipe,
        target=split.target,
        classes=[str(c) for c in classes],
        metrics=metrics,
        checkpoint=trained["checkpoint"],
        history=trained["history"],
        best_epoch=trained["best_epoch"],
        train_seconds=trained["seconds"],
    )
    return EvaluationSummary(
        metrics["accuracy"], metrics["f1_weighted"], metrics["f1_macro"], metrics["test_count"]
    )
