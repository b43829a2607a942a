"""How far a 2D map can be trusted: how many of each image's nearest neighbours in its layer's
full space stay its nearest on the map (neighbour preservation) and how few strangers the map
puts beside it (trustworthiness, as scikit-learn defines it), on a seeded sample.

Both come from one pass over the sample's similarity rows, a block of rows at a time. This is
scikit-learn's `trustworthiness` without its full sort of every row: at 10,000 images it
ranks only each row's map neighbours (docs/benchmarks.md, "Map trust scores").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from precompute.stats.vectors import normalised

NEIGHBOURS = 10
SCORE_SAMPLE = 10_000  # images scored per map, at most
ROWS_AT_ONCE = 512  # rows scored at a time: at 10,000 images about 120 MB of work arrays
SCORE_STREAM = 1  # the sample's random stream, apart from the fit sample's


@dataclass(frozen=True)
class MapTrust:
    """A map's scores against its layer's full space, and the sample they were measured on."""

    neighbour_preservation: float  # mean share of each image's k neighbours kept on the map
    trustworthiness: float  # 1 = no image on the map is closer than its true neighbours
    neighbours: int
    sample: int

    def record(self) -> dict[str, float | int]:
        """The scores as they go into a projection's sidecar, rounded."""
        return {"neighbour_preservation": round(self.neighbour_preservation, 4),
                "trustworthiness": round(self.trustworthiness, 4),
                "neighbours": self.neighbours, "score_sample": self.sample}


def score_sample(count: int, seed: int, size: int = SCORE_SAMPLE) -> np.ndarray:
    """The sorted rows a map is scored on: all of them up to `size`, else a seeded sample."""
    if count <= size:
        return np.arange(count)
    # A stream of its own: drawn from `seed` alone it would repeat the fit sample's draw, so
    # above the fit sample no placed point would ever be scored.
    rng = np.random.default_rng([seed, SCORE_STREAM])
    return np.sort(rng.choice(count, size, replace=False))


def map_trust(embeddings: np.ndarray, coords: np.ndarray, k: int = NEIGHBOURS) -> MapTrust:
    """Neighbour preservation and trustworthiness of the map `coords` of `embeddings` (rows in
    step), with neighbours by cosine similarity in the full space and by distance on the map."""
    count = len(embeddings)
    k = min(k, (count - 1) // 2)  # trustworthiness is defined for k < n / 2
    if k < 1:
        raise ValueError(f"a map of {count} images is too small to score")
    vectors = normalised(embeddings)
    points = np.asarray(coords, dtype=np.float64)
    squared = (points ** 2).sum(axis=1)
    kept = 0
    penalty = 0.0
    for start in range(0, count, ROWS_AT_ONCE):
        rows = np.arange(start, min(start + ROWS_AT_ONCE, count))
        similar = vectors[rows] @ vectors.T
        similar[np.arange(len(rows)), rows] = -np.inf  # an image is not its own neighbour
        apart = squared[rows, None] + squared[None, :] - 2.0 * (points[rows] @ points.T)
        apart[np.arange(len(rows)), rows] = np.inf
        true_near = np.argpartition(-similar, k, axis=1)[:, :k]
        map_near = np.argpartition(apart, k, axis=1)[:, :k]
        is_true = np.zeros(similar.shape, dtype=bool)
        np.put_along_axis(is_true, true_near, True, axis=1)
        stays = np.take_along_axis(is_true, map_near, axis=1)
        kept += int(stays.sum())
        # An intruder's rank in the full space: 1 + how many images are more similar.
        intruder_similarity = np.take_along_axis(similar, map_near, axis=1)
        ranks = 1 + (similar[:, None, :] > intruder_similarity[:, :, None]).sum(axis=2)
        # a tie at the k-th neighbour can rank an intruder inside the k: no penalty, not less
        penalty += float((np.maximum(ranks - k, 0) * ~stays).sum())
    trust = 1.0 - 2.0 / (count * k * (2.0 * count - 3.0 * k - 1.0)) * penalty
    return MapTrust(kept / (count * k), trust, k, count)
