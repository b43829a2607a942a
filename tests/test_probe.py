"""The linear probe's own L-BFGS against scikit-learn's logistic regression, on problems where
both converge: the same optimum, so the same probabilities and held-out predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from precompute.stats.probe import (
    fit_softmax,
    held_out_predictions,
    probe_correct,
    span_pays,
    standardised,
)
from precompute.stats.separability import Grouping


def noisy_groups(rows: int, dims: int, classes: int, seed: int,
                 noise: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Points around one centre per class, overlapping enough that no plane splits them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % classes
    centres = rng.normal(size=(classes, dims))
    return centres[labels] + noise * rng.normal(size=(rows, dims)), labels


def fit_one_fold(features: np.ndarray, versions: list[np.ndarray], classes: int,
                 penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """`fit_softmax` on one fold of every row: weights (versions × classes × d) and intercepts
    (versions × classes)."""
    targets = np.stack([np.eye(classes, dtype=np.float32)[labels].T for labels in versions])
    weights, intercepts = fit_softmax(
        np.ascontiguousarray(features.T)[None], np.ones((1, len(features)), dtype=bool),
        targets[None], np.array([penalty]))
    return weights[0], intercepts[0]


def probabilities(points: np.ndarray, weights: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    logits = points @ weights.T + intercepts
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classes", [2, 4])
def test_a_converged_fit_is_scikit_learns_optimum(classes):
    points, labels = noisy_groups(300, 12, classes, seed=classes)
    features, _ = standardised(points, points[:1])
    weights, intercepts = fit_one_fold(features, [labels], classes,
                                       penalty=(2.0 if classes == 2 else 1.0) / len(labels))
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(features, labels)
    ours = probabilities(features, weights[0], intercepts[0])
    np.testing.assert_allclose(ours, reference.predict_proba(features), atol=2e-3)


def test_versions_fitted_together_are_each_fitted_alone():
    points, labels = noisy_groups(200, 8, 3, seed=5)
    other = np.random.default_rng(0).permutation(labels)
    features, _ = standardised(points, points[:1])
    together = fit_one_fold(features, [labels, other], 3, penalty=1 / 200)
    for version, alone in enumerate([labels, other]):
        weights, intercepts = fit_one_fold(features, [alone], 3, penalty=1 / 200)
        np.testing.assert_allclose(
            probabilities(features, together[0][version], together[1][version]),
            probabilities(features, weights[0], intercepts[0]), atol=2e-3)


def test_fewer_rows_than_dimensions_are_fitted_in_their_span_to_the_same_predictions():
    """62 rows: folds of 49 and 50 training rows, fitted together (padded with a row the loss
    ignores, and in spans of 49 and 50 dimensions, with a zero column)."""
    points, labels = noisy_groups(62, 150, 3, seed=7, noise=6.0)
    assert span_pays(49, 150, 3)
    ours = held_out_predictions(points, labels[:, None], folds=5, seed=0)[:, 0]
    reference = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=10_000)),
        points, labels, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert (ours == reference).mean() >= 0.95  # the same optimum; near-ties may fall apart
    assert 0.5 < (ours == labels).mean() < 1.0


def test_shuffles_are_held_out_on_the_labels_folds_within_each_stratum():
    points, labels = noisy_groups(120, 6, 3, seed=9)
    strata = np.arange(120) // 60
    grouping = Grouping(np.arange(120), labels, strata)
    shuffled = labels.copy()
    for members in grouping.stratum_positions():
        shuffled[members] = np.random.default_rng(1).permutation(labels[members])
    real, chance = probe_correct(points, [labels, shuffled], grouping, folds=5, seed=0)
    for members in grouping.stratum_positions():
        folds = StratifiedKFold(5, shuffle=True, random_state=0).split(
            points[members], labels[members])
        expected = np.zeros(len(members), dtype=int)
        for train, test in folds:
            model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10,
                                                                       max_iter=10_000))
            expected[test] = model.fit(points[members][train], shuffled[members][train]).predict(
                points[members][test])
        assert (chance[members] == (expected == shuffled[members])).mean() >= 0.95
    assert real.mean() > chance.mean() + 0.2
