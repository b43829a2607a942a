"""How well labelled groups are told apart in a feature space, against chance.

Three metrics, each computed as one score per image so that every one gets the same treatment:

- `knn`: leave-one-out k-nearest-neighbour accuracy (cosine; the neighbours come from a FAISS
  search restricted to the rows being scored, the image itself dropped; majority vote, ties to
  the class whose votes rank nearer);
- `probe`: held-out accuracy of a linear probe (standardised features, logistic regression),
  every image predicted once by stratified k-fold cross-validation;
- `silhouette`: the silhouette of each image's group (cosine distance).

A score is the mean over images, with a 95% bootstrap interval over images. Its baseline is the
same score after shuffling the labels (mean over shuffles, with the 2.5–97.5 percentiles of the
shuffled scores). Conditional separability (B within each value of A) restricts everything to
strata, rows sharing a value of A: neighbours come from the same stratum, a probe is fitted per
stratum, silhouettes are computed per stratum, and the baseline shuffles B within strata. A B
that only comes along with A then scores at its baseline.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import faiss
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from precompute.stats.small_fits import one_blas_thread

METRICS = ("knn", "probe", "silhouette")
TIE_BREAK = 1e-6  # per-rank vote bonus: far below one vote, so it only settles ties


@dataclass(frozen=True)
class Grouping:
    """Rows to score, their class (0..C-1) and their stratum (all 0 when unconditional)."""

    rows: np.ndarray  # store rows, ascending
    labels: np.ndarray
    strata: np.ndarray

    @property
    def classes(self) -> int:
        return int(len(np.unique(self.labels)))

    @property
    def stratum_count(self) -> int:
        return int(len(np.unique(self.strata)))

    def stratum_positions(self) -> list[np.ndarray]:
        """Positions (into `rows`) of each stratum."""
        return [np.flatnonzero(self.strata == s) for s in np.unique(self.strata)]


@dataclass(frozen=True)
class Score:
    """One cell of the separability matrix."""

    value: float
    low: float
    high: float
    baseline: float
    baseline_low: float
    baseline_high: float
    n: int
    classes: int
    strata: int

    def record(self) -> dict[str, float | int]:
        return asdict(self)


def make_grouping(
    labels: np.ndarray, strata: np.ndarray | None, usable: np.ndarray, min_class_size: int
) -> Grouping | None:
    """The rows that can be scored: `usable` ones, in classes of at least `min_class_size` rows
    (within their stratum when `strata` is given), in strata with at least two such classes.
    None when nothing is left. `labels`/`strata` are per store row (any hashable values)."""
    rows = np.flatnonzero(usable)
    if not len(rows):
        return None
    label_values = np.asarray(labels, dtype=object)[rows]
    stratum_values = (
        np.zeros(len(rows), dtype=np.int64) if strata is None
        else np.asarray(strata, dtype=object)[rows]
    )
    _, stratum_codes = np.unique(stratum_values.astype(str), return_inverse=True)
    _, label_codes = np.unique(label_values.astype(str), return_inverse=True)
    pair = stratum_codes.astype(np.int64) * (label_codes.max() + 1) + label_codes
    pair_sizes = np.bincount(pair)
    keep = pair_sizes[pair] >= min_class_size
    # Strata need two classes left, else there is nothing to tell apart inside them.
    kept_pairs = np.unique(pair[keep])
    classes_per_stratum = np.bincount(kept_pairs // (label_codes.max() + 1),
                                      minlength=stratum_codes.max() + 1)
    keep &= classes_per_stratum[stratum_codes] >= 2
    if not keep.any():
        return None
    _, labels_kept = np.unique(label_codes[keep], return_inverse=True)
    _, strata_kept = np.unique(stratum_codes[keep], return_inverse=True)
    return Grouping(rows[keep], labels_kept.astype(np.int64), strata_kept.astype(np.int64))


# ---------------------------------------------------------------------------- per-image scores
def neighbours_within_strata(
    index: faiss.Index, vectors: np.ndarray, grouping: Grouping, k: int
) -> np.ndarray:
    """For each row of `grouping`, the positions (into its rows) of its `k` nearest other rows
    of the same stratum, nearest first; -1 where a stratum has fewer rows. `vectors` are the
    unit-length embeddings of the grouping's rows, as indexed (row ids are store rows)."""
    position = np.full(index.ntotal, -1, dtype=np.int64)
    position[grouping.rows] = np.arange(len(grouping.rows))
    found = np.full((len(grouping.rows), k), -1, dtype=np.int64)
    for members in grouping.stratum_positions():
        ids = grouping.rows[members]
        selector = faiss.IDSelectorBatch(ids.astype(np.int64))
        wanted = min(k + 1, len(ids))
        _, hits = index.search(
            np.ascontiguousarray(vectors[members], dtype=np.float32), wanted,
            params=faiss.SearchParameters(sel=selector),
        )
        others = hits != ids[:, None]
        # Drop the image itself (or, if duplicates outrank it, the farthest hit), keep order.
        order = np.argsort(~others, axis=1, kind="stable")[:, : wanted - 1]
        kept = np.take_along_axis(hits, order, axis=1)
        found[members, : wanted - 1] = np.where(kept >= 0, position[np.maximum(kept, 0)], -1)
    return found


def knn_correct(neighbours: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Whether the majority label of each row's neighbours is its own label."""
    n, k = neighbours.shape
    votes = np.zeros((n, int(labels.max()) + 1))
    valid = neighbours >= 0
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k))[valid]
    weights = 1.0 + TIE_BREAK * (k - np.broadcast_to(np.arange(k), (n, k))[valid])
    np.add.at(votes, (rows, labels[neighbours[valid]]), weights)
    return votes.argmax(axis=1) == labels


# The probe's iterations: on 1,000 photos (46 groupings in each of 4 layers) nearly every fit on
# real labels converged within 100 (scores moved by at most 0.003 against 1,000 iterations),
# while fits on shuffled labels ran on to 1,000 for baselines that moved by at most 0.005;
# the stage took 1.5× less time (docs/benchmarks.md, A first map of a new dataset).
PROBE_ITERATIONS = 100


def make_probe() -> Pipeline:
    """The linear probe: standardised features into a multinomial logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_ITERATIONS))


def probe_correct(
    vectors: np.ndarray, labels: np.ndarray, grouping: Grouping, folds: int, seed: int
) -> np.ndarray:
    """Whether each row's held-out probe prediction is its label; one probe per stratum,
    stratified k-fold (fewer folds where a class is smaller than `folds`)."""
    correct = np.zeros(len(labels), dtype=bool)
    for members in grouping.stratum_positions():
        y = labels[members]
        splits = max(2, min(folds, int(np.bincount(y)[np.unique(y)].min())))
        cv = StratifiedKFold(splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings(), one_blas_thread():
            # The probe's accuracy is measured, not its optimum: an unconverged fit is fine;
            # strata with many small classes are classification all the same.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
            predicted = cross_val_predict(make_probe(), vectors[members], y, cv=cv)
        correct[members] = predicted == y
    return correct


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances of unit-length rows (float32, zero diagonal)."""
    distances = 1.0 - vectors @ vectors.T
    np.clip(distances, 0.0, 2.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    return distances


def silhouettes(distances: np.ndarray, labels: np.ndarray, grouping: Grouping) -> np.ndarray:
    """Silhouette of each row's group among the rows of its stratum (`distances` between the
    grouping's rows): scikit-learn's `silhouette_samples`, from one matrix product of the
    distances with the groups' memberships per stratum. It is called once per label shuffle
    on the same distances, 21 times a grouping: a layer of 1,000 photos took 6.8 s of scores
    through `silhouette_samples` and 2.2 s so, shuffles and bootstrap intervals included."""
    values = np.zeros(len(labels))
    for members in grouping.stratum_positions():
        codes = np.unique(labels[members], return_inverse=True)[1]
        rows = np.arange(len(members))
        membership = np.zeros((len(members), codes.max() + 1))
        membership[rows, codes] = 1.0
        to_group = distances[np.ix_(members, members)].astype(np.float64) @ membership
        sizes = membership.sum(axis=0)
        own_size = sizes[codes]
        within = to_group[rows, codes] / np.maximum(own_size - 1, 1)  # the row itself is 0 away
        to_group /= sizes
        to_group[rows, codes] = np.inf
        nearest_other = to_group.min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            values[members] = np.nan_to_num(
                (nearest_other - within) / np.maximum(within, nearest_other))
        values[members[own_size == 1]] = 0.0  # a group of one has no silhouette
    return values


# ---------------------------------------------------------------------------- score and chance
def shuffle_within_strata(
    labels: np.ndarray, grouping: Grouping, rng: np.random.Generator
) -> np.ndarray:
    """`labels` permuted inside each stratum (class sizes per stratum are kept)."""
    shuffled = labels.copy()
    for members in grouping.stratum_positions():
        shuffled[members] = rng.permutation(labels[members])
    return shuffled


def assess(
    per_image: Callable[[np.ndarray], np.ndarray],
    grouping: Grouping,
    shuffles: int,
    bootstrap: int,
    rng: np.random.Generator,
) -> Score:
    """Score `grouping` with `per_image` (labels → one score per row), its bootstrap interval,
    and the shuffled-label baseline with its spread."""
    values = np.asarray(per_image(grouping.labels), dtype=np.float64)
    low, high = bootstrap_interval(values, bootstrap, rng)
    null = np.array([
        np.mean(per_image(shuffle_within_strata(grouping.labels, grouping, rng)))
        for _ in range(shuffles)
    ])
    return Score(
        value=float(values.mean()), low=low, high=high,
        baseline=float(null.mean()),
        baseline_low=float(np.percentile(null, 2.5)),
        baseline_high=float(np.percentile(null, 97.5)),
        n=len(values), classes=grouping.classes, strata=grouping.stratum_count,
    )


def bootstrap_interval(
    values: np.ndarray, resamples: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of `values` over images resampled with replacement."""
    means = np.empty(resamples)
    for start in range(0, resamples, 100):  # in blocks, to bound memory on large sets
        block = min(100, resamples - start)
        picks = rng.integers(0, len(values), size=(block, len(values)))
        means[start:start + block] = values[picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
