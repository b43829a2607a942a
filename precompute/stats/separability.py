"""How well labelled groups are told apart in a feature space, against chance.

Three metrics, each computed as one score per image so that every one gets the same treatment:

- `knn`: leave-one-out k-nearest-neighbour accuracy (cosine; the neighbours come from a FAISS
  search restricted to the rows being scored, the image itself dropped; majority vote, ties to
  the class whose votes rank nearer);
- `probe`: held-out accuracy of a linear probe (standardised features, logistic regression),
  every image predicted once by stratified k-fold cross-validation (probe.py);
- `silhouette`: the silhouette of each image's group (cosine distance).

A score is the mean over images, with a 95% bootstrap interval over images. Its baseline is the
same score after shuffling the labels (mean over shuffles, with the 2.5–97.5 percentiles of the
shuffled scores); the probe's shuffles are permuted within its folds (probe.py). Each metric
scores the labels and all their shuffles in one call, so work they share is done once (a
stratum's distances, a fold's standardised features). Conditional separability (B within each
value of A) restricts everything to strata, rows sharing a value of A: neighbours come from the
same stratum, a probe is fitted per stratum, silhouettes are computed per stratum, and the
baseline shuffles B within strata. A B that only comes along with A then scores at its
baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import faiss
import numpy as np

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


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances of unit-length rows (float32, zero diagonal)."""
    distances = 1.0 - vectors @ vectors.T
    np.clip(distances, 0.0, 2.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    return distances


def silhouettes(
    distances: np.ndarray, versions: list[np.ndarray], grouping: Grouping
) -> list[np.ndarray]:
    """Silhouette of each row's group among the rows of its stratum (`distances` between the
    grouping's rows), for each label version: scikit-learn's `silhouette_samples`, from one
    product of a stratum's distances with the groups' memberships of every version. A layer of
    1,000 photos (21 versions a grouping) took 6.8 s of scores through `silhouette_samples`,
    2.2 s version by version, and less again with the distances taken out once per stratum."""
    values = [np.zeros(len(labels)) for labels in versions]
    for members in grouping.stratum_positions():
        rows = np.arange(len(members))
        codes = codes_within(versions, members)
        widths = np.cumsum([0] + [int(code.max()) + 1 for code in codes])
        membership = np.zeros((len(members), widths[-1]))
        for code, start in zip(codes, widths[:-1], strict=True):
            membership[rows, start + code] = 1.0
        to_groups = distances[np.ix_(members, members)].astype(np.float64) @ membership
        sizes = membership.sum(axis=0)
        for version, (code, start, stop) in enumerate(zip(codes, widths[:-1], widths[1:],
                                                          strict=True)):
            to_group, group_sizes = to_groups[:, start:stop], sizes[start:stop]
            own_size = group_sizes[code]
            within = to_group[rows, code] / np.maximum(own_size - 1, 1)  # itself is 0 away
            to_group = to_group / group_sizes
            to_group[rows, code] = np.inf
            nearest_other = to_group.min(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                values[version][members] = np.nan_to_num(
                    (nearest_other - within) / np.maximum(within, nearest_other))
            values[version][members[own_size == 1]] = 0.0  # a group of one has no silhouette
    return values


def codes_within(versions: list[np.ndarray], members: np.ndarray) -> list[np.ndarray]:
    """Each label version of the rows at `members` as class codes 0..k-1."""
    return [np.unique(labels[members], return_inverse=True)[1] for labels in versions]


# ---------------------------------------------------------------------------- score and chance
def shuffle_within_strata(
    labels: np.ndarray, grouping: Grouping, rng: np.random.Generator,
    blocks: np.ndarray | None = None,
) -> np.ndarray:
    """`labels` permuted inside each stratum, and inside each of its `blocks` when given (a
    block number per row): class sizes per stratum, and per block, are kept."""
    shuffled = labels.copy()
    for members in grouping.stratum_positions():
        parts = [members] if blocks is None else [
            members[blocks[members] == block] for block in np.unique(blocks[members])]
        for part in parts:
            shuffled[part] = rng.permutation(labels[part])
    return shuffled


def assess(
    score_versions: Callable[[list[np.ndarray]], list[np.ndarray]],
    grouping: Grouping,
    shuffles: int,
    bootstrap: int,
    rng: np.random.Generator,
    blocks: np.ndarray | None = None,
) -> Score:
    """Score `grouping` with `score_versions` (label versions → one score per row for each:
    the labels, then `shuffles` shuffles of them, within strata and within `blocks` if given),
    its bootstrap interval, and the shuffled-label baseline with its spread."""
    versions = [grouping.labels] + [
        shuffle_within_strata(grouping.labels, grouping, rng, blocks) for _ in range(shuffles)
    ]
    scores = score_versions(versions)
    values = np.asarray(scores[0], dtype=np.float64)
    low, high = bootstrap_interval(values, bootstrap, rng)
    null = np.array([np.mean(shuffled) for shuffled in scores[1:]])
    return Score(
        value=float(values.mean()), low=low, high=high,
        baseline=float(null.mean()),
        baseline_low=float(np.percentile(null, 2.5)),
        baseline_high=float(np.percentile(null, 97.5)),
        n=len(values), classes=grouping.classes, strata=grouping.stratum_count,
    )


def each_version(
    per_image: Callable[[np.ndarray], np.ndarray],
) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """`assess`'s scorer from a function of one label version."""
    return lambda versions: [per_image(labels) for labels in versions]


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
