"""The nearest-neighbour index chosen by size returns what exact search returns."""

from __future__ import annotations

import faiss
import numpy as np

import precompute.stages.index
from precompute.config import IndexConfig
from precompute.stages.index import build_index, exact_limit, exact_neighbours, recall_at
from precompute.stats.vectors import NORMALISE_CHUNK, normalised


def clustered(count: int, dim: int, seed: int, draw: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres fixed by `seed`; `draw` picks another sample of points."""
    centres = np.random.default_rng(seed).standard_normal((40, dim)).astype(np.float32)
    rng = np.random.default_rng([seed, draw])
    labels = rng.integers(0, 40, count)
    return normalised(centres[labels] + 0.9 * rng.standard_normal((count, dim)))


def test_small_sets_get_exact_search():
    vectors = clustered(2_000, 64, seed=1)
    built = build_index(vectors, IndexConfig(exact_below=5_000))
    assert isinstance(built.index, faiss.IndexFlatIP) and built.recall == 1.0


def test_by_default_wider_vectors_switch_to_ivf_at_fewer_rows(monkeypatch):
    assert exact_limit(IndexConfig(), 512) == 200_000
    assert exact_limit(IndexConfig(), 2048) == 50_000  # ResNet50's width: the same scan
    assert exact_limit(IndexConfig(exact_below=1_000), 2048) == 1_000
    monkeypatch.setattr(precompute.stages.index, "EXACT_SCAN_FLOATS", 64 * 1_000)  # a small budget
    assert isinstance(build_index(clustered(1_200, 64, seed=6), IndexConfig()).index,
                      faiss.IndexIVFFlat)
    assert isinstance(build_index(clustered(1_200, 32, seed=6), IndexConfig()).index,
                      faiss.IndexFlatIP)


def test_stored_embeddings_are_indexed_as_unit_vectors_chunk_by_chunk(tmp_path):
    count = NORMALISE_CHUNK + 1_000  # two chunks
    rng = np.random.default_rng(3)
    raw = (clustered(count, 16, seed=3) * rng.uniform(0.5, 4, (count, 1))).astype(np.float16)
    np.save(tmp_path / "embeddings.npy", raw)
    stored = np.load(tmp_path / "embeddings.npy", mmap_mode="r")  # as the store reads them
    built = build_index(stored, IndexConfig(exact_below=count + 1))
    assert built.index.ntotal == count
    assert np.allclose(built.index.reconstruct_n(0, count), normalised(raw), atol=1e-6)


def test_exact_neighbours_chunk_by_chunk_match_a_flat_index():
    vectors = clustered(NORMALISE_CHUNK + 5, 8, seed=5)  # the last chunk holds fewer rows than k
    queries = clustered(50, 8, seed=5, draw=1)
    flat = faiss.IndexFlatIP(8)
    flat.add(vectors)
    _, truth = flat.search(queries, 11)
    assert np.array_equal(exact_neighbours(queries, vectors * 3, 11), truth)


def test_large_sets_get_an_ivf_index_whose_recall_meets_the_bound_on_new_queries():
    vectors = clustered(30_000, 64, seed=2)
    config = IndexConfig(exact_below=10_000, target_recall=0.95)
    lengths = np.random.default_rng(2).uniform(0.5, 4, (len(vectors), 1))
    built = build_index(vectors * lengths, config)  # normalised by the build
    assert isinstance(built.index, faiss.IndexIVFFlat)
    assert built.recall >= 0.95 and 1 <= built.nprobe < built.index.nlist

    # Fresh queries from the same distribution, not the calibration sample.
    queries = clustered(300, 64, seed=2, draw=1)
    exact = faiss.IndexFlatIP(64)
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    _, found = built.index.search(queries, 10)
    assert recall_at(found, truth) >= 0.93


def test_the_calibrated_probe_count_survives_writing_and_reading(tmp_path):
    vectors = clustered(20_000, 32, seed=4)
    built = build_index(vectors, IndexConfig(exact_below=1_000))
    faiss.write_index(built.index, str(tmp_path / "index.faiss"))
    assert faiss.read_index(str(tmp_path / "index.faiss")).nprobe == built.nprobe
