"""Data-quality checks on a feature space, one function per kind of problem, each giving rows of
one shared table (see `ISSUE_COLUMNS`): near-duplicates, duplicates across a split, likely label
mistakes and outliers. numpy and scikit-learn only; the quality stage feeds them the store.

Label mistakes are ranked the way confident learning does (Northcutt, Jiang and Chuang, 2021:
self-confidence with per-class thresholds) on out-of-fold predicted probabilities. This is our
own implementation: cleanlab, which offers the same ranking, is AGPL-3.0 and this project MIT.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from precompute.stats.small_fits import one_blas_thread
from precompute.store import LABEL_ISSUE, NEAR_DUPLICATE, OUTLIER, SPLIT_LEAK

ISSUE_COLUMNS = ["sample_id", "kind", "attribute", "score", "related_sample_id", "given",
                 "suggested", "group"]
PROBE_COMPONENTS = 128  # the probe sees this many principal components: minutes → seconds


def issue_table(rows: list[dict]) -> pd.DataFrame:
    """Issue rows as the store's table, every column present and typed."""
    table = pd.DataFrame(rows, columns=ISSUE_COLUMNS)
    return table.astype({"sample_id": "string", "kind": "string", "attribute": "string",
                         "score": "float64", "related_sample_id": "string", "given": "string",
                         "suggested": "string", "group": "Int64"})


def similar_pairs(neighbours: np.ndarray, similarities: np.ndarray, threshold: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each unordered pair of rows at cosine similarity ≥ `threshold`, once: (first rows,
    second rows, similarities). `neighbours`/`similarities` are each row's nearest rows (itself
    excluded), most similar first; -1 marks a missing neighbour."""
    rows, columns = np.nonzero(similarities >= threshold)
    partner, scores = neighbours[rows, columns], similarities[rows, columns]
    keep = partner >= 0
    pairs = np.sort(np.stack([rows[keep], partner[keep]], axis=1), axis=1)
    pairs, first = np.unique(pairs, axis=0, return_index=True)
    return pairs[:, 0], pairs[:, 1], scores[keep][first]


def near_duplicates(ids: np.ndarray, first: np.ndarray, second: np.ndarray,
                    scores: np.ndarray) -> pd.DataFrame:
    """Images of duplicate pairs, grouped (connected pairs form one group): one row each, scored
    by its highest similarity within the group, with that most similar member as
    `related_sample_id`."""
    if not len(first):
        return issue_table([])
    count = len(ids)
    graph = coo_matrix((np.ones(len(first)), (first, second)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    members = np.unique(np.concatenate([first, second]))
    groups = {label: number for number, label in enumerate(dict.fromkeys(labels[members]))}
    best = {}
    for row, other, similarity in zip(first, second, scores, strict=True):
        for a, b in ((row, other), (other, row)):
            if similarity > best.get(a, (-1.0, -1))[0]:
                best[a] = (float(similarity), int(b))
    return issue_table([
        {"sample_id": ids[row], "kind": NEAR_DUPLICATE, "score": best[row][0],
         "related_sample_id": ids[best[row][1]], "group": groups[labels[row]]}
        for row in sorted(best)
    ])


def split_leaks(duplicates: pd.DataFrame, ids: np.ndarray, parts: np.ndarray,
                target: str) -> pd.DataFrame:
    """Members of a duplicate group that sit outside the training part while another member
    is in it: their test (or validation) score was partly seen in training."""
    part_of = dict(zip(ids, parts, strict=True))
    rows = []
    for group, members in duplicates.groupby("group"):
        trained = [m for m in members["sample_id"] if part_of[m] == "train"]
        for _, member in members.iterrows():
            if trained and part_of[member["sample_id"]] in ("val", "test"):
                rows.append({"sample_id": member["sample_id"], "kind": SPLIT_LEAK,
                             "attribute": target, "score": member["score"],
                             "related_sample_id": trained[0], "given": part_of[member["sample_id"]],
                             "group": group})
    return issue_table(rows)


def conflicting_duplicates(duplicates: pd.DataFrame, labels: dict[str, pd.Series]
                           ) -> pd.DataFrame:
    """Near-duplicates whose most similar copy has another value of an attribute: one of the two
    labels is likely wrong."""
    rows = []
    for attribute, values in labels.items():
        for _, member in duplicates.iterrows():
            given, other = values[member["sample_id"]], values[member["related_sample_id"]]
            if given != other:
                rows.append({"sample_id": member["sample_id"], "kind": LABEL_ISSUE,
                             "attribute": attribute, "score": member["score"],
                             "related_sample_id": member["related_sample_id"],
                             "given": given, "suggested": other, "group": member["group"]})
    return issue_table(rows)


def out_of_fold_probabilities(vectors: np.ndarray, labels: np.ndarray, folds: int,
                              seed: int) -> tuple[np.ndarray, list[str]]:
    """Each image's class probabilities from a logistic-regression probe that did not see it
    (stratified `folds`-fold cross-validation on the leading principal components)."""
    classes = sorted(set(labels))
    smallest_fold = len(vectors) - -(-len(vectors) // folds)  # training rows of a fold
    components = min(PROBE_COMPONENTS, vectors.shape[1], smallest_fold - 1)
    probe = make_pipeline(StandardScaler(), PCA(components, random_state=seed),
                          LogisticRegression(max_iter=500, C=0.1))
    with one_blas_thread():
        probabilities = cross_val_predict(
            probe, vectors, labels, method="predict_proba",
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return probabilities, classes


def neighbour_probabilities(neighbours: np.ndarray, labels: np.ndarray, classes: list[str],
                            smoothing: float = 0.5) -> np.ndarray:
    """Class probabilities of images from their neighbours' labels, smoothed so that no class
    is impossible: `neighbours` holds rows of `labels` (every image's label; those not in
    `classes` do not vote), one row of them per image asked about."""
    code = {c: i for i, c in enumerate(classes)}
    codes = np.array([code.get(v, -1) for v in labels])
    votes = np.zeros((len(neighbours), len(classes)))
    for column in neighbours.T:
        voter = np.where(column >= 0, codes[np.maximum(column, 0)], -1)
        valid = voter >= 0
        np.add.at(votes, (np.flatnonzero(valid), voter[valid]), 1)
    return (votes + smoothing) / (votes.sum(axis=1, keepdims=True) + smoothing * len(classes))


def label_issues(ids: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                 classes: list[str], attribute: str) -> pd.DataFrame:
    """Confident learning: the confident joint (each image counted under its most likely class
    among those whose probability reaches that class's threshold, the mean probability the
    class gets on its own images) estimates how many labels are wrong, its off-diagonal total;
    that many images with the lowest self-confidence (the probability of their given label)
    are flagged, scored by 1 − self-confidence, with the most probable other class as the
    suggestion."""
    count = len(labels)
    code = {c: i for i, c in enumerate(classes)}
    given = np.array([code[v] for v in labels], dtype=np.int64)
    thresholds = np.array([probabilities[given == j, j].mean() if (given == j).any() else 1.0
                           for j in range(len(classes))])
    confident = np.where(probabilities >= thresholds, probabilities, -1.0)
    estimated = int(((confident.max(axis=1) >= 0) & (confident.argmax(axis=1) != given)).sum())
    self_confidence = probabilities[np.arange(count), given]
    others = probabilities.copy()
    others[np.arange(count), given] = -1.0
    suggested = others.argmax(axis=1)
    return issue_table([
        {"sample_id": ids[i], "kind": LABEL_ISSUE, "attribute": attribute,
         "score": 1.0 - float(self_confidence[i]), "given": classes[given[i]],
         "suggested": classes[suggested[i]]}
        for i in np.argsort(self_confidence, kind="stable")[:estimated]
    ])


def outliers(ids: np.ndarray, similarities: np.ndarray, share: float) -> pd.DataFrame:
    """The `share` of images farthest from their neighbours: scored by the mean cosine distance
    to them."""
    distance = 1.0 - np.where(np.isfinite(similarities), similarities, 0.0).mean(axis=1)
    count = int(np.ceil(share * len(ids)))
    farthest = np.argsort(-distance, kind="stable")[:count]
    return issue_table([{"sample_id": ids[i], "kind": OUTLIER, "score": float(distance[i])}
                        for i in farthest])
