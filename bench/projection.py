"""Projections at scale: the project stage's reducers on clustered synthetic embeddings, fitted
on a sample of `[projection] fit_sample` points with the others placed by `transform`, as the
stage does above that size."""

from __future__ import annotations

import time

import numpy as np

from bench.measures import Row, row
from precompute.config import ProjectionConfig
from precompute.stages.project import fit_and_place
from precompute.stats.reducers import make_reducer
from precompute.stats.vectors import normalised

GOALS_MINUTES = {"umap": 10, "pca_umap": 10}


def clustered_vectors(rows: int, dim: int, clusters: int = 64, seed: int = 0) -> np.ndarray:
    """Unit-length float32 rows around `clusters` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    vectors = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, 100_000):
        stop = min(rows, start + 100_000)
        labels = rng.integers(0, clusters, stop - start)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        vectors[start:stop] = centres[labels] + 0.8 * noise
    return normalised(vectors)


def projection_measures(rows: int, dim: int, methods: list[str]) -> list[Row]:
    """Minutes to map `rows` × `dim` embeddings to 2D with each method."""
    fit_sample = ProjectionConfig().fit_sample
    vectors = clustered_vectors(rows, dim)
    results = []
    for method in methods:
        reducer = make_reducer(method, min(rows, fit_sample), dim, 0)
        began = time.perf_counter()
        coords = fit_and_place(reducer, vectors, fit_sample, 0, method)
        minutes = (time.perf_counter() - began) / 60
        if not np.isfinite(coords).all():
            raise RuntimeError(f"{method} gave coordinates that are not finite")
        results.append(row(f"{method} → 2D (fit on {fit_sample:,}, place the rest)", rows, dim,
                           minutes, "min", GOALS_MINUTES.get(method)))
    return results
