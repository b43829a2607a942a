"""Training mode "linear": a multinomial logistic regression on a backbone's pooled pretrained
penultimate features, the strong and fast baseline every fine-tuning run is compared with.

The features are standardised and the regularisation C is chosen by an inner stratified
cross-validation on the training images alone (scikit-learn's `GridSearchCV`, by log loss). Without
folds the model learns from the train and validation parts (nothing stops early, so validation
images are not needed apart) and is scored on the test part; with k folds each fold's model
predicts its own fold. Its predictions and metrics are stored like any other run's; it makes no
new feature space.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from precompute.config import RunConfig
from precompute.nn.sources import pretrained_space
from precompute.stages.evaluate import (
    EvaluationSummary,
    fold_numbers,
    fold_rows,
    write_predictions,
)
from precompute.stats.small_fits import one_blas_thread
from precompute.stats.split import TEST, UNLABELLED, Split
from precompute.store import Store

log = logging.getLogger(__name__)

C_GRID = np.logspace(-4, 1, 6)  # the regularisation strengths the inner cross-validation tries
INNER_FOLDS = 3
MAX_ITER = 2000


def fit_linear(
    store: Store, config: RunConfig, key: str, split: Split, features: torch.Tensor,
    force: bool = False,
) -> EvaluationSummary:
    """Fit, predict every image and store the predictions and metrics of run `key` (its
    sidecar's `train_seconds` says how long the fits took)."""
    train = config.train
    path = store.predictions_path(key)
    pretrained = store.meta(store.embeddings_path(pretrained_space(config.model)))
    recipe = {
        "mode": "linear", "features": pretrained["recipe"], "split": split.recipe,
        "c_grid": C_GRID.tolist(), "inner_folds": INNER_FOLDS, "seed": train.seed,
    }
    if not force and store.is_current(path, recipe):
        return EvaluationSummary.of(store.meta(path)["metrics"], skipped=True)

    began = time.perf_counter()
    vectors = features.numpy()
    classes = split.classes
    probabilities = np.zeros((len(vectors), len(classes)), dtype=np.float32)
    chosen, seen = [], 0
    for fold in fold_numbers(split):
        learn = (split.parts != UNLABELLED) & ~(fold_rows(split, fold) if fold
                                                else split.parts == TEST)
        model = _classifier(split.labels[learn], train.seed)
        rows = fold_rows(split, fold)
        with one_blas_thread():
            model.fit(vectors[learn], split.labels[learn])
            # Columns in split.classes order: a fold may lack a class, which then gets 0.
            columns = [classes.index(c) for c in model.classes_]
            probabilities[np.ix_(rows, columns)] = model.predict_proba(vectors[rows])
        seen += int(learn.sum())
        chosen.append(_chosen_c(model))
    seconds = time.perf_counter() - began
    log.info("linear %s: C = %s in %.1f s", key, ", ".join(f"{c:g}" for c in chosen), seconds)
    return write_predictions(
        store, key, split, probabilities, recipe, train_seconds=round(seconds, 2),
        images_seen=seen, device="cpu", chosen_c=chosen, mode="linear",
    )


def _classifier(labels: np.ndarray, seed: int) -> Pipeline | GridSearchCV:
    """Standardised features into a logistic regression whose C an inner stratified
    cross-validation chooses (by log loss); a fixed C = 1 where a class has too few images."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=MAX_ITER))
    folds = min(INNER_FOLDS, int(min(np.unique(labels, return_counts=True)[1])))
    if folds < 2:
        return model
    return GridSearchCV(model, {"logisticregression__C": C_GRID}, scoring="neg_log_loss",
                        cv=StratifiedKFold(folds, shuffle=True, random_state=seed))


def _chosen_c(model: Pipeline | GridSearchCV) -> float:
    if isinstance(model, GridSearchCV):
        return float(model.best_params_["logisticregression__C"])
    return float(model[-1].C)
