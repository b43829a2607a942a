"""Clusters: k chosen by the silhouette, enrichment p-values, layer maps aligned by Procrustes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import procrustes
from scipy.stats import fisher_exact

from precompute.stages.cluster import by_size, choose_k
from precompute.stats.align import procrustes_alignment
from precompute.stats.enrichment import enrichment
from precompute.stats.vectors import normalised


@pytest.mark.parametrize("blobs, sample", [(5, 1000), (3, 100)])
def test_silhouette_chosen_k_recovers_the_number_of_generated_blobs(blobs, sample):
    rng = np.random.default_rng(blobs)
    centres = normalised(rng.normal(size=(blobs, 24)))
    labels = rng.integers(0, blobs, size=250)
    vectors = normalised(centres[labels] + 0.15 * rng.normal(size=(250, 24)))
    choice = choose_k(vectors, 2, 9, sample=sample, seed=0)
    assert choice.k == blobs
    assert max(choice.silhouette_by_k, key=choice.silhouette_by_k.get) == blobs
    assert sorted(choice.silhouette_by_k) == list(range(2, 10))
    assert choice.sample == min(250, sample)
    # every image gets a cluster that matches its blob
    found = choice.model.predict(vectors)
    assert pd.crosstab(found, labels).gt(0).sum(axis=1).eq(1).all()


def test_clusters_are_numbered_by_size_and_noise_stays_noise():
    labels = np.array([2, 2, 2, 0, 1, 1, -1, 2])
    assert by_size(labels).tolist() == [0, 0, 0, 2, 1, 1, -1, 0]


def test_enrichment_finds_the_value_a_cluster_over_represents():
    labels = np.array([0] * 20 + [1] * 40)
    table = pd.DataFrame({
        "style": ["Baroque"] * 20 + ["Baroque"] * 10 + ["Cubism"] * 28 + ["(missing)"] * 2,
    })
    records = enrichment(labels, table, ["style"])
    top = records[0]
    assert (top["cluster"], top["value"], top["count"], top["cluster_size"]) == (
        0, "Baroque", 20, 20
    )
    assert top["expected"] == pytest.approx(20 * 30 / 58, abs=1e-3)
    # the one-sided hypergeometric test is Fisher's exact test, "greater"
    _, fisher = fisher_exact([[20, 0], [10, 28]], alternative="greater")
    assert top["p_value"] == pytest.approx(fisher, rel=1e-6)
    assert top["p_value"] <= top["q_value"] < 0.05
    assert all(r["fold"] > 1 for r in records)
    assert {(r["cluster"], r["value"]) for r in records} == {(0, "Baroque"), (1, "Cubism")}


def test_a_rotated_scaled_shifted_map_is_aligned_back_onto_its_reference():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(200, 2))
    angle = 1.1
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mirrored = np.array([[1.0, 0.0], [0.0, -1.0]])
    moved = 3.5 * reference @ turn @ mirrored + np.array([10.0, -4.0])
    moved += 0.05 * rng.normal(size=moved.shape)

    fit = procrustes_alignment(moved, reference)
    assert np.abs(fit.apply(moved) - reference).max() < 0.1
    assert fit.scale == pytest.approx(1 / 3.5, rel=0.01)
    assert np.linalg.det(fit.rotation) == pytest.approx(-1.0)  # the mirror is undone
    _, _, disparity = procrustes(reference, moved)
    assert fit.disparity == pytest.approx(disparity, rel=1e-6)
    assert fit.record()["disparity"] < 0.01
