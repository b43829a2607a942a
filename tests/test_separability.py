"""Separability scores on constructed embeddings with known answers, checked with scikit-learn."""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_samples, silhouette_score
from sklearn.model_selection import (
    LeaveOneOut,
    StratifiedKFold,
    cross_val_predict,
    cross_val_score,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from precompute.config import AnalysisConfig
from precompute.stages.analyse import conditional_pairs
from precompute.stats.probe import fold_ids, probe_correct
from precompute.stats.separability import (
    Grouping,
    Score,
    assess,
    cosine_distances,
    each_version,
    knn_correct,
    make_grouping,
    neighbours_within_strata,
    silhouettes,
)
from precompute.stats.vectors import normalised

K = 5


def directions(count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random unit vectors: group centres that cosine distance tells apart."""
    return normalised(rng.normal(size=(count, dim)))


def groups_around(centres: np.ndarray, labels: np.ndarray, noise: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Unit vectors scattered around the centre of their label."""
    points = centres[labels] + noise * rng.normal(size=(len(labels), centres.shape[1]))
    return normalised(points)


def flat_index(vectors: np.ndarray) -> faiss.Index:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def score_all(vectors: np.ndarray, grouping: Grouping, shuffles: int = 20,
              seed: int = 0) -> dict[str, Score]:
    """knn, probe and silhouette of `grouping` in `vectors` (one row per store row)."""
    points = vectors[grouping.rows]
    neighbours = neighbours_within_strata(flat_index(vectors), points, grouping, K)
    distances = cosine_distances(points)
    folds = fold_ids(grouping, 5, seed)
    per_image = {
        "knn": each_version(lambda y: knn_correct(neighbours, y)),
        "probe": lambda versions: probe_correct(points, versions, grouping, folds),
        "silhouette": lambda versions: silhouettes(distances, versions, grouping),
    }
    return {
        metric: assess(f, grouping, shuffles, 200, np.random.default_rng(seed),
                       blocks=folds if metric == "probe" else None)
        for metric, f in per_image.items()
    }


def everything(count: int) -> np.ndarray:
    return np.ones(count, dtype=bool)


def test_well_separated_groups_score_near_one_and_shuffled_labels_near_chance():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 30)
    vectors = groups_around(directions(4, 32, rng), labels, 0.05, rng)
    scores = score_all(vectors, make_grouping(labels, None, everything(120), 5))

    for metric in ("knn", "probe"):
        score = scores[metric]
        assert score.value > 0.97, metric
        assert abs(score.baseline - 0.25) < 0.1, metric
        assert score.baseline_high < score.low, metric
        assert (score.n, score.classes, score.strata) == (120, 4, 1)
    assert scores["silhouette"].value > 0.8
    assert abs(scores["silhouette"].baseline) < 0.15  # random groups: no structure


def test_labels_the_space_does_not_encode_score_at_chance():
    rng = np.random.default_rng(2)
    vectors = normalised(rng.normal(size=(120, 32)))
    labels = rng.permutation(np.repeat(np.arange(3), 40))
    scores = score_all(vectors, make_grouping(labels, None, everything(120), 5))
    for metric, score in scores.items():
        assert score.low <= score.baseline <= score.high, metric
    assert scores["knn"].value < 0.5


def test_an_attribute_that_only_comes_along_with_another_shows_no_conditional_separability():
    """Artists nested in styles, with only the style in the embedding: artist looks separable
    on its own (a neighbour shares the style, so often the artist) but not within a style."""
    rng = np.random.default_rng(3)
    style = np.repeat(np.arange(4), 60)
    artist = style * 3 + np.tile(np.repeat(np.arange(3), 20), 4)
    vectors = groups_around(directions(4, 32, rng), style, 0.3, rng)

    alone = score_all(vectors, make_grouping(artist, None, everything(240), 5))
    assert alone["knn"].value > alone["knn"].baseline_high + 0.1
    within = score_all(vectors, make_grouping(artist, style, everything(240), 5))
    for metric, score in within.items():
        assert score.strata == 4 and score.classes == 12
        assert abs(score.value - score.baseline) < 0.1, metric
        assert score.value < 0.5 if metric != "silhouette" else score.value < 0.05, metric


def test_an_attribute_encoded_within_each_value_of_another_shows_conditional_separability():
    rng = np.random.default_rng(4)
    style = np.repeat(np.arange(4), 60)
    artist = style * 3 + np.tile(np.repeat(np.arange(3), 20), 4)
    centres = directions(4, 32, rng)[style] + 0.5 * directions(12, 32, rng)[artist]
    vectors = normalised(centres + 0.1 * rng.normal(size=centres.shape))

    within = score_all(vectors, make_grouping(artist, style, everything(240), 5))
    for metric in ("knn", "probe"):
        assert within[metric].value > 0.9 and within[metric].baseline < 0.5, metric
    assert within["silhouette"].low > within["silhouette"].baseline_high


def test_default_conditional_pairs_skip_an_attribute_that_is_a_function_of_the_other():
    styles = np.repeat(["a", "b", "c", "d", "e", "f"], 10)
    table = pd.DataFrame({
        "style": styles,
        "movement": np.where(np.isin(styles, ["a", "b", "c"]), "old", "new"),  # f(style)
        "artist": np.tile(["x", "y"], 30),
    })
    pairs = conditional_pairs(AnalysisConfig(), table, ["style", "movement", "artist"])
    assert ("movement", "style") not in pairs
    assert ("style", "movement") in pairs
    assert ("artist", "style") in pairs and ("style", "artist") in pairs


def test_small_classes_and_single_class_strata_are_left_out():
    labels = np.array(["a"] * 6 + ["b"] * 6 + ["c"] * 2 + ["d"] * 6)
    strata = np.array(["s"] * 12 + ["t"] * 2 + ["u"] * 6)
    usable = everything(20)
    usable[0] = False
    grouping = make_grouping(labels, strata, usable, 5)
    assert grouping.rows.tolist() == list(range(1, 12))  # only stratum s has two classes
    assert grouping.classes == 2 and grouping.stratum_count == 1
    assert make_grouping(labels, None, everything(20), 7) is None


def test_neighbours_are_the_nearest_other_scored_images_of_the_same_stratum():
    rng = np.random.default_rng(8)
    vectors = normalised(rng.normal(size=(50, 8)))
    labels = np.tile(["a", "b"], 25)
    strata = np.repeat(["s", "t"], 25)
    usable = rng.random(50) > 0.3  # rows with a missing value are neither queries nor answers
    grouping = make_grouping(labels, strata, usable, 2)
    points = vectors[grouping.rows]
    neighbours = neighbours_within_strata(flat_index(vectors), points, grouping, 3)

    similarity = points @ points.T
    same_stratum = grouping.strata[:, None] == grouping.strata[None, :]
    similarity[~same_stratum] = -np.inf
    np.fill_diagonal(similarity, -np.inf)
    expected = np.argsort(-similarity, axis=1, kind="stable")[:, :3]
    assert (neighbours == expected).all()


def overlapping_groups(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """60 points in 3 balanced, partly overlapping groups (accuracy well below 1)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), 20)
    return groups_around(directions(3, 16, rng), labels, 0.35, rng), labels


def test_knn_accuracy_agrees_with_scikit_learn_leave_one_out():
    vectors, labels = overlapping_groups(5)
    binary = (labels > 0).astype(int)  # two classes and an odd k: no ties to break
    grouping = make_grouping(binary, None, everything(60), 5)
    neighbours = neighbours_within_strata(flat_index(vectors), vectors, grouping, K)
    ours = knn_correct(neighbours, grouping.labels).mean()
    reference = cross_val_predict(
        KNeighborsClassifier(n_neighbors=K, metric="cosine", algorithm="brute"),
        vectors, binary, cv=LeaveOneOut(),
    )
    assert ours == pytest.approx((reference == binary).mean())
    assert 0.5 < ours < 1.0


def test_probe_accuracy_agrees_with_scikit_learn_cross_val_score():
    vectors, labels = overlapping_groups(6)
    grouping = make_grouping(labels, None, everything(60), 5)
    ours = probe_correct(vectors, [grouping.labels], grouping, fold_ids(grouping, 5, 0))[0]
    ours = ours.mean()
    reference = cross_val_score(  # equal folds, so the mean of folds is the pooled accuracy
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), vectors, labels,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
    )
    assert ours == pytest.approx(reference.mean())


def test_silhouette_agrees_with_scikit_learn_silhouette_score():
    vectors, labels = overlapping_groups(7)
    raw = vectors * np.random.default_rng(0).uniform(0.5, 3.0, size=(60, 1))  # cosine ignores
    grouping = make_grouping(labels, None, everything(60), 5)
    score = assess(
        lambda versions: silhouettes(cosine_distances(normalised(raw)), versions, grouping),
        grouping,
        shuffles=5, bootstrap=200, rng=np.random.default_rng(0),
    )
    assert score.value == pytest.approx(silhouette_score(raw, labels, metric="cosine"), abs=1e-5)
    assert score.low <= score.value <= score.high


def test_silhouettes_are_scikit_learns_within_each_stratum():
    rng = np.random.default_rng(3)
    vectors = normalised(rng.normal(size=(300, 16)) + np.repeat(rng.normal(size=(6, 16)), 50, 0))
    labels = np.repeat(np.arange(6), 50) % 4
    labels[7] = 5  # a group of one in its stratum
    strata = np.arange(300) % 3
    grouping = Grouping(np.arange(300), labels, strata)
    distances = cosine_distances(vectors)
    expected = np.zeros(300)
    for members in grouping.stratum_positions():
        expected[members] = silhouette_samples(distances[np.ix_(members, members)],
                                               labels[members], metric="precomputed")
    shuffled = np.random.default_rng(4).permutation(labels)
    expected_shuffled = np.zeros(300)
    for members in grouping.stratum_positions():
        expected_shuffled[members] = silhouette_samples(
            distances[np.ix_(members, members)], shuffled[members], metric="precomputed")
    ours, ours_shuffled = silhouettes(distances, [labels, shuffled], grouping)
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    np.testing.assert_allclose(ours_shuffled, expected_shuffled, atol=1e-6)
