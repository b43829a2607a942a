"""The linear probe's own L-BFGS against scikit-learn's logistic regression: the same optimum
where both converge, as far within the same 100 iterations where neither does, and the
probe's shuffles permuted within its folds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from precompute.stats import probe
from precompute.stats.probe import (
    PROBE_ITERATIONS,
    fit_softmax,
    fold_ids,
    held_out_predictions,
    probe_correct,
    softmax_penalty,
    span_coordinates,
    span_pays,
    standardised,
)
from precompute.stats.separability import Grouping, shuffle_within_strata


def noisy_groups(rows: int, dims: int, classes: int, seed: int,
                 noise: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Points around one centre per class, overlapping enough that no plane splits them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % classes
    centres = rng.normal(size=(classes, dims))
    return centres[labels] + noise * rng.normal(size=(rows, dims)), labels


def fit_one_fold(features: np.ndarray, versions: list[np.ndarray], classes: int,
                 used: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`fit_softmax` on one fold of every row (or of the `used` ones) with scikit-learn's
    penalty: weights (versions × classes × d) and intercepts (versions × classes)."""
    used = np.ones(len(features), dtype=bool) if used is None else used
    targets = np.stack([np.eye(classes, dtype=np.float32)[labels].T for labels in versions])
    weights, intercepts = fit_softmax(
        np.ascontiguousarray(features.T, dtype=np.float32)[None], used[None], targets[None],
        softmax_penalty(classes, [used.sum()]))
    return weights[0], intercepts[0]


def probabilities(points: np.ndarray, weights: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    logits = points @ weights.T + intercepts
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


def scikit_learns_objective(points: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                            intercepts: np.ndarray) -> float:
    """Mean cross-entropy + |weights|² / (2 n): LogisticRegression's at C = 1 (k ≥ 3)."""
    logits = points @ weights.T + intercepts
    logits -= logits.max(axis=1, keepdims=True)
    entropy = np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(labels)), labels]
    return float(entropy.mean() + (weights ** 2).sum() / (2 * len(labels)))


@pytest.mark.parametrize("classes", [2, 4])
def test_a_converged_fit_is_scikit_learns_optimum(classes):
    points, labels = noisy_groups(300, 12, classes, seed=classes)
    features, _ = standardised(points, points[:1])
    weights, intercepts = fit_one_fold(features, [labels], classes)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(features, labels)
    ours = probabilities(features, weights[0], intercepts[0])
    np.testing.assert_allclose(ours, reference.predict_proba(features), atol=2e-3)


def test_within_its_iterations_a_slow_fit_gets_as_far_as_scikit_learns():
    """Badly scaled features, where first-order steps crawl: after `PROBE_ITERATIONS` the loss
    is scikit-learn's after as many (gradient descent stays ten times higher)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    points = rng.normal(size=(300, 60)) * np.logspace(0, 2, 60) + 5 * np.eye(4, 60)[labels]
    weights, intercepts = fit_one_fold(points, [labels], 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning: stopped as well
        reference = LogisticRegression(max_iter=PROBE_ITERATIONS).fit(points, labels)
    ours = scikit_learns_objective(points, labels, weights[0].astype(np.float64), intercepts[0])
    assert ours <= 1.05 * scikit_learns_objective(points, labels, reference.coef_,
                                                  reference.intercept_)


def test_versions_fitted_together_are_each_fitted_alone():
    points, labels = noisy_groups(200, 8, 3, seed=5)
    other = np.random.default_rng(0).permutation(labels)
    features, _ = standardised(points, points[:1])
    together = fit_one_fold(features, [labels, other], 3)
    for version, alone in enumerate([labels, other]):
        weights, intercepts = fit_one_fold(features, [alone], 3)
        np.testing.assert_allclose(
            probabilities(features, together[0][version], together[1][version]),
            probabilities(features, weights[0], intercepts[0]), atol=2e-3)


def test_rows_out_of_use_change_nothing():
    """A fold padded to its batch's length: rows it does not use leave its fit as it was."""
    points, labels = noisy_groups(200, 8, 3, seed=6)
    features, _ = standardised(points, points[:1])
    rng = np.random.default_rng(1)
    padded = np.vstack([features, 10 * rng.normal(size=(40, 8)).astype(np.float32)])
    used = np.arange(240) < 200
    alone = fit_one_fold(features, [labels], 3)
    with_padding = fit_one_fold(padded, [np.concatenate([labels, rng.integers(0, 3, 40)])], 3,
                                used=used)
    np.testing.assert_allclose(probabilities(features, with_padding[0][0], with_padding[1][0]),
                               probabilities(features, alone[0][0], alone[1][0]), atol=1e-4)


def test_span_coordinates_keep_every_inner_product_and_drop_a_duplicate_rows_dimension():
    points, _ = noisy_groups(40, 150, 3, seed=8)
    fitted, tested = points[:30].astype(np.float32), points[30:].astype(np.float32)
    fitted[7] = fitted[3]  # a duplicate image: its row adds no dimension to the span
    coordinates, held_out = span_coordinates(fitted, tested)
    assert coordinates.shape == (30, 29) and held_out.shape == (10, 29)
    np.testing.assert_allclose(coordinates @ coordinates.T, fitted @ fitted.T, rtol=1e-4,
                               atol=1e-2)
    np.testing.assert_allclose(held_out @ coordinates.T, tested @ fitted.T, rtol=1e-4, atol=1e-2)


def test_span_coordinates_keep_the_small_directions_of_a_steep_spectrum():
    """Singular values falling as i^-1.5, standardised: every row is its own dimension (a
    float32 Gram matrix kept 105 of 799 at 800 rows), and the held-out products stay."""
    rng = np.random.default_rng(3)
    rows, dims = 300, 500
    left = np.linalg.qr(rng.normal(size=(rows + 60, rows + 60)))[0]
    right = np.linalg.qr(rng.normal(size=(dims, rows + 60)))[0]
    points = (left * np.arange(1, rows + 61) ** -1.5) @ right.T
    fitted, tested = standardised(points[:rows], points[rows:])
    coordinates, held_out = span_coordinates(fitted, tested)
    assert coordinates.shape[1] >= rows - 1  # standardising may take one dimension
    exact = fitted.astype(np.float64)
    np.testing.assert_allclose(held_out @ coordinates.T, tested @ exact.T, atol=2e-2)


def test_fewer_rows_than_dimensions_are_fitted_in_their_span_to_the_same_predictions():
    """62 rows: folds of 49 and 50 training rows, fitted together (padded with a row the loss
    ignores, and in spans of 48 and 49 dimensions, standardising taking one, with a zero
    column)."""
    points, labels = noisy_groups(62, 150, 3, seed=7, noise=6.0)
    assert span_pays(49, 150, 3)
    folds = fold_ids(Grouping(np.arange(62), labels, np.zeros(62, dtype=int)), 5, seed=0)
    ours = held_out_predictions(points, labels[:, None], folds)[:, 0]
    reference = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=10_000)),
        points, labels, cv=[(np.flatnonzero(folds != f), np.flatnonzero(folds == f))
                            for f in np.unique(folds)])
    assert (ours == reference).mean() >= 0.95  # the same optimum; near-ties may fall apart
    assert 0.5 < (ours == labels).mean() < 1.0


def test_the_probes_shuffles_keep_each_folds_classes_and_are_scored_on_those_folds():
    points, labels = noisy_groups(120, 6, 3, seed=9)
    grouping = Grouping(np.arange(120), labels, np.arange(120) // 60)
    folds = fold_ids(grouping, 5, seed=0)
    shuffled = shuffle_within_strata(labels, grouping, np.random.default_rng(1), blocks=folds)
    assert (shuffled != labels).mean() > 0.4
    for members in grouping.stratum_positions():
        for fold in np.unique(folds[members]):
            part = members[folds[members] == fold]
            assert sorted(shuffled[part]) == sorted(labels[part])  # the same classes, stratified
    real, chance = probe_correct(points, [labels, shuffled], grouping, folds)
    for members in grouping.stratum_positions():
        expected = cross_val_predict(
            make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=10_000)),
            points[members], shuffled[members],
            cv=[(np.flatnonzero(folds[members] != f), np.flatnonzero(folds[members] == f))
                for f in np.unique(folds[members])])
        assert (chance[members] == (expected == shuffled[members])).mean() >= 0.95
    assert real.mean() > chance.mean() + 0.2


def test_a_tight_memory_bound_fits_one_fold_and_version_at_a_time_to_the_same_predictions(
        monkeypatch):
    points, labels = noisy_groups(120, 6, 3, seed=11)
    rng = np.random.default_rng(2)
    codes = np.stack([labels] + [rng.permutation(labels) for _ in range(3)], axis=1)
    folds = fold_ids(Grouping(np.arange(120), labels, np.zeros(120, dtype=int)), 5, seed=0)
    together = held_out_predictions(points, codes, folds)
    monkeypatch.setattr(probe, "BATCH_BYTES", 1)
    assert all(len(batch) == 1 and versions.stop - versions.start == 1 for batch, versions in
               probe.fit_batches([probe.prepared_fold(points, folds == 0, 12)] * 5, 4, 3))
    apart = held_out_predictions(points, codes, folds)
    assert (apart == together).mean() >= 0.97
