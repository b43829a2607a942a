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
from precompute.stats.split import TEST, UNLABELLED, Split, seen_in_training
from precompute.store import ID_COLUMN, SpaceKey, Store


@dataclass
class EvaluationSummary:
    accuracy: float
    f1_weighted: float
    f1_macro: float
    test_count: int
    folds: int = 1
    accuracy_std: float = 0.0
    f1_weighted_std: float = 0.0
    skipped: bool = False

    @classmethod
    def of(cls, metrics: dict[str, Any], skipped: bool = False) -> EvaluationSummary:
        """The summary of a predictions sidecar's `metrics`."""
        return cls(metrics["accuracy"], metrics["f1_weighted"], metrics["f1_macro"],
                   metrics["test_count"], metrics.get("folds", 1),
                   metrics.get("accuracy_std", 0.0), metrics.get("f1_weighted_std", 0.0),
                   skipped=skipped)

    def line(self) -> str:
        if self.folds > 1:
            return (
                f"{self.folds}-fold accuracy {self.accuracy:.3f} ± {self.accuracy_std:.3f}, "
                f"F1 weighted {self.f1_weighted:.3f} ± {self.f1_weighted_std:.3f}, macro "
                f"{self.f1_macro:.3f} ({self.test_count} images, each predicted out of fold)"
            )
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
    """Write the predictions of training run `model` for every image and its metrics, unless
    current. With folds each image is predicted by the model of its own fold."""
    space = SpaceKey(model, PENULTIMATE)
    embeddings = store.meta(store.embeddings_path(space))
    checkpoints = [store.checkpoint_path(model, "best", fold) for fold in fold_numbers(split)]
    trained = [store.meta(path) for path in checkpoints]
    if embeddings is None or None in trained:
        raise StoreError(f"{store.root} has no finished training and embeddings of {model}")
    path = store.predictions_path(model)
    recipe = {"embeddings": embeddings["recipe"], "split": split.recipe}
    if not force and store.is_current(path, recipe):
        return EvaluationSummary.of(store.meta(path)["metrics"], skipped=True)

    vectors = torch.from_numpy(np.asarray(store.load_embeddings(space), dtype=np.float32))
    probabilities = np.zeros((len(vectors), len(split.classes)), dtype=np.float32)
    for fold, checkpoint_path in zip(fold_numbers(split), checkpoints, strict=True):
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        weight = checkpoint["model"][f"{checkpoint['classifier']}.weight"].float()
        bias = checkpoint["model"][f"{checkpoint['classifier']}.bias"].float()
        rows = fold_rows(split, fold)
        with torch.inference_mode():
            probabilities[rows] = torch.softmax(vectors[rows] @ weight.T + bias, dim=1).numpy()
    return write_predictions(
        store, model, split, probabilities, recipe,
        checkpoint=[meta["checkpoint"] for meta in trained],
        history=trained[0]["history"],
        best_epoch=[meta["best_epoch"] for meta in trained],
        train_seconds=round(sum(meta["seconds"] for meta in trained), 2),
        images_seen=sum(meta["images_seen"] for meta in trained),
        device=trained[0]["device"],
        mode=trained[0]["recipe"]["train"]["mode"],
    )


def fold_numbers(split: Split) -> list[int]:
    """The folds whose models a run trains: [0] for one split (0 = no fold), else 1 … k."""
    return [0] if split.folds is None else list(range(1, split.fold_count + 1))


def fold_rows(split: Split, fold: int) -> np.ndarray:
    """The images fold `fold`'s model predicts and embeds: all of them without folds."""
    return np.ones(len(split.labels), dtype=bool) if fold == 0 else split.folds == fold


def write_predictions(
    store: Store, model: str, split: Split, probabilities: np.ndarray,
    recipe: dict[str, Any], **info: Any,
) -> EvaluationSummary:
    """Store a run's prediction for every image (`probabilities` over `split.classes`) and its
    metrics on the test images: with folds, the mean and spread over the folds, and the
    per-class report and confusion matrix over all the out-of-fold predictions."""
    classes = np.asarray(split.classes, dtype=object)
    predicted = classes[probabilities.argmax(axis=1)]
    correct = (split.parts != UNLABELLED) & (predicted == split.labels)
    store.write_table(
        store.predictions_path(model),
        pd.DataFrame({
            ID_COLUMN: store.read_images([ID_COLUMN])[ID_COLUMN],
            "split": pd.array(split.parts, dtype="string"),
            "predicted": pd.array(predicted, dtype="string"),
            "confidence": probabilities.max(axis=1).astype(np.float32),
            "correct": correct.astype(bool),
        }),
    )
    test = split.parts == TEST
    metrics = classification_metrics(split.labels[test], predicted[test])
    metrics["too_small"] = split.too_small
    metrics["folds"] = split.fold_count
    metrics["test_with_duplicate_in_training"] = (  # None: unknown, no quality stage yet
        None if split.groups is None else int(seen_in_training(split).sum()))
    if split.folds is not None:
        per_fold = [classification_metrics(split.labels[test & (split.folds == fold)],
                                           predicted[test & (split.folds == fold)])
                    for fold in fold_numbers(split)]
        for name in ("accuracy", "f1_weighted", "f1_macro"):
            values = [fold[name] for fold in per_fold]
            metrics[name], metrics[f"{name}_std"] = float(np.mean(values)), float(np.std(values))
        metrics["per_fold"] = [{k: fold[k] for k in ("accuracy", "f1_weighted", "f1_macro",
                                                     "test_count")} for fold in per_fold]
    store.commit(store.predictions_path(model), recipe, target=split.target,
                 classes=[str(c) for c in classes], metrics=metrics, **info)
    return EvaluationSummary.of(metrics)
