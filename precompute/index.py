"""Index stage: a FAISS index per feature space for cosine nearest neighbours.

Vectors are L2-normalised, so inner product equals cosine similarity. Below
`IndexConfig.exact_below` vectors the index is exact (flat); above it, HNSW. When FAISS reports
GPUs, searches run on a GPU copy of the index (`searchable`); the stored index is always the CPU
form, so any machine can read the store.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import faiss
import numpy as np

from precompute.config import IndexConfig
from precompute.project import normalised
from precompute.store import SpaceKey, Store, atomic_path

log = logging.getLogger(__name__)

HNSW_LINKS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


@dataclass
class IndexSummary:
    made: dict[str, str] = field(default_factory=dict)
    up_to_date: int = 0

    def line(self) -> str:
        if not self.made:
            return f"index: up to date ({self.up_to_date} indexes)"
        kinds = ", ".join(f"{space} {kind}" for space, kind in self.made.items())
        return f"index: {len(self.made)} made ({kinds})"


def build_index(vectors: np.ndarray, exact_below: int) -> faiss.Index:
    """An inner-product index over unit vectors: exact below `exact_below` rows, HNSW above."""
    dim = vectors.shape[1]
    if len(vectors) < exact_below:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def searchable(index: faiss.Index) -> faiss.Index:
    """A GPU copy of a flat index when FAISS has GPUs, else the index itself."""
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpus and isinstance(index, faiss.IndexFlat):
        return faiss.index_cpu_to_all_gpus(index)
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
        recipe = {"embeddings": source["recipe"], "exact_below": config.exact_below}
        if not force and store.is_current(path, recipe):
            summary.up_to_date += 1
            continue
        began = time.perf_counter()
        index = build_index(normalised(store.load_embeddings(space)), config.exact_below)
        with atomic_path(path) as tmp:
            faiss.write_index(index, str(tmp))
        store.commit(
            path, recipe, kind=index_kind(index), metric="cosine", count=index.ntotal,
            dim=index.d, seconds=round(time.perf_counter() - began, 2),
        )
        summary.made[str(space)] = index_kind(index)
    return summary
