"""Index stage: a FAISS index per feature space for cosine nearest neighbours.

Vectors are L2-normalised, so inner product equals cosine similarity; they are normalised and
added a chunk at a time, so a build holds the index and one chunk, never a second copy of the
whole set. Below `exact_limit` vectors (`IndexConfig.exact_below`, or by default as many as
keep an exact query's scan to EXACT_SCAN_FLOATS) the index is exact (flat). Above it, an
inverted-file index
(IVF) whose number of probed lists is calibrated at build time: the smallest `nprobe` whose
recall@10 against exact search, on a sample of the set's own vectors, reaches
`IndexConfig.target_recall`. The recall reached is recorded in the sidecar. When FAISS reports
GPUs, searches run on a GPU copy of a flat index (`searchable`); the stored index is always the
CPU form, so any machine can read the store.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import faiss
import numpy as np

from precompute.config import IndexConfig
from precompute.stats.vectors import normalised, normalised_chunks
from precompute.store import SpaceKey, Store, atomic_path

log = logging.getLogger(__name__)

CALIBRATION_QUERIES = 500
RECALL_AT = 10
TRAINING_PER_LIST = 64  # k-means training points per inverted list
# An exact query reads every vector: by default at most 200,000 of 512 floats (11–19 ms on two
# cores: docs/benchmarks.md), so 50,000 of ResNet50's 2048.
EXACT_SCAN_FLOATS = 200_000 * 512


@dataclass
class IndexSummary:
    made: dict[str, str] = field(default_factory=dict)
    up_to_date: int = 0

    def line(self) -> str:
        if not self.made:
            return f"index: up to date ({self.up_to_date} indexes)"
        kinds = ", ".join(f"{space} {kind}" for space, kind in self.made.items())
        return f"index: {len(self.made)} made ({kinds})"


@dataclass
class BuiltIndex:
    index: faiss.Index
    recall: float  # recall@10 against exact search (1.0 for exact indexes)
    nprobe: int | None = None


def build_index(embeddings: np.ndarray, config: IndexConfig, seed: int = 0) -> BuiltIndex:
    """An inner-product index over `embeddings` (any float rows, memory-mapped or not) scaled
    to unit length: exact below `exact_limit` rows, calibrated IVF above."""
    count, dim = embeddings.shape
    if count < exact_limit(config, dim):
        index = faiss.IndexFlatIP(dim)
        add_in_chunks(index, embeddings)
        return BuiltIndex(index, 1.0)
    lists = int(min(config.max_lists, max(16, 4 * np.sqrt(count))))
    rng = np.random.default_rng(seed)
    training = normalised(embeddings[np.sort(rng.choice(
        count, min(count, lists * TRAINING_PER_LIST), replace=False))])
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.train(training)
    del training
    add_in_chunks(index, embeddings)
    nprobe, recall = calibrate_nprobe(index, embeddings, config.target_recall, rng)
    index.nprobe = nprobe
    return BuiltIndex(index, recall, nprobe)


def exact_limit(config: IndexConfig, dim: int) -> int:
    """The number of vectors of width `dim` from which the index is IVF instead of exact."""
    return config.exact_below if config.exact_below is not None else EXACT_SCAN_FLOATS // dim


def add_in_chunks(index: faiss.Index, embeddings: np.ndarray) -> None:
    """Add `embeddings` to `index` a chunk at a time, each normalised as it goes in."""
    for _, chunk in normalised_chunks(embeddings):
        index.add(chunk)


def calibrate_nprobe(index: faiss.IndexIVF, embeddings: np.ndarray, target: float,
                     rng: np.random.Generator) -> tuple[int, float]:
    """The smallest power-of-two nprobe whose recall@10 on sampled queries reaches `target`.
    The queries are the set's own vectors, so each one's own entry is left out of both result
    lists: finding itself is free and would flatter the recall."""
    picked = np.sort(rng.choice(len(embeddings), min(CALIBRATION_QUERIES, len(embeddings)),
                                replace=False))
    queries = normalised(embeddings[picked])
    truth = without_own(exact_neighbours(queries, embeddings, RECALL_AT + 1), picked)
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = nprobe
        _, found = index.search(queries, RECALL_AT + 1)
        recall = recall_at(without_own(found, picked), truth)
        if recall >= target or nprobe >= index.nlist:
            return nprobe, recall
        nprobe *= 2


def exact_neighbours(queries: np.ndarray, embeddings: np.ndarray, k: int) -> np.ndarray:
    """The rows of the `k` embeddings most similar (cosine) to each unit query, by brute force
    over a chunk at a time (`faiss.knn`), normalised as it is read: no full copy.
    (An IVF index probing all its lists gives the same answer 8 times slower at 1M × 512.)"""
    scores, rows = [], []
    for start, chunk in normalised_chunks(embeddings):
        chunk_scores, chunk_rows = faiss.knn(queries, chunk, k, metric=faiss.METRIC_INNER_PRODUCT)
        scores.append(chunk_scores)  # a chunk shorter than k pads with -1 and the lowest score
        rows.append(np.where(chunk_rows >= 0, chunk_rows + start, -1))
    best = np.argsort(-np.hstack(scores), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(np.hstack(rows), best, axis=1)


def without_own(results: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Each row's first RECALL_AT results other than the query's own row (for queries taken
    from the indexed set itself)."""
    return np.array([[r for r in row if r != self][:RECALL_AT]
                     for row, self in zip(results.tolist(), own.tolist(), strict=True)])


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true neighbours that were found (rows are queries)."""
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(), strict=True))
    return hits / truth.size


def searchable(index: faiss.Index) -> faiss.Index:
    """A GPU copy of a flat index when FAISS has GPUs, else (or when the copy fails, e.g. out
    of GPU memory) the index itself on the CPU."""
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if not gpus or not isinstance(index, faiss.IndexFlat):
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError as exc:
        log.warning("FAISS could not use the GPU (%s); searching on the CPU", exc)
        return index


def index_kind(index: faiss.Index) -> str:
    """Short name of the index type as recorded in the store."""
    return type(index).__name__


def run_index(
    store: Store, config: IndexConfig, spaces: list[SpaceKey] | None = None, force: bool = False
) -> IndexSummary:
    """Build the index of each feature space that is not up to date."""
    summary = IndexSummary()
    for space in spaces or store.spaces():
        path = store.index_path(space)
        source = store.meta(store.embeddings_path(space))
        recipe = {"embeddings": source["recipe"],
                  "exact_below": exact_limit(config, source["dim"]),
                  "target_recall": config.target_recall, "max_lists": config.max_lists}
        if not force and store.is_current(path, recipe):
            summary.up_to_date += 1
            continue
        began = time.perf_counter()
        built = build_index(store.load_embeddings(space), config)
        with atomic_path(path) as tmp:
            faiss.write_index(built.index, str(tmp))
        store.commit(
            path, recipe, kind=index_kind(built.index), metric="cosine",
            count=built.index.ntotal, dim=built.index.d, recall_at_10=round(built.recall, 4),
            nprobe=built.nprobe, seconds=round(time.perf_counter() - began, 2),
        )
        summary.made[str(space)] = index_kind(built.index)
    return summary
