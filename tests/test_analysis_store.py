"""The science side of a store built from 66 real paintings: aligned layer maps, clusters per
layer, the separability table, and what `precompute info` says about them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from precompute.cli import main
from precompute.store import SpaceKey, Store

LAYERS = ["_blocks.3", "_blocks.7", "_blocks.11", "penultimate"]
SPACES = [SpaceKey("pretrained", layer) for layer in LAYERS]
REFERENCE = "pretrained/penultimate"


def test_each_layer_map_is_aligned_onto_the_penultimate_map_of_the_same_method(built_store):
    store = Store.open(built_store)
    for method in ("pca", "tsne", "umap", "pca_tsne"):
        reference = store.meta(store.projection_path(SPACES[-1], method))
        assert reference["alignment"] is None
        target = np.asarray(store.load_projection(SPACES[-1], method), dtype=np.float64)
        for space in SPACES[:-1]:
            meta = store.meta(store.projection_path(space, method))
            alignment = meta["alignment"]
            assert alignment["to"] == REFERENCE
            assert meta["recipe"]["align_to"]["space"] == REFERENCE
            assert abs(abs(np.linalg.det(alignment["rotation"])) - 1) < 1e-4
            assert 0 <= alignment["disparity"] < 1
            coords = np.asarray(store.load_projection(space, method), dtype=np.float64)
            # aligned maps share the reference's centre
            assert np.allclose(coords.mean(axis=0), target.mean(axis=0), atol=1e-3), space


def test_every_layer_has_clusters_and_the_attribute_values_they_over_represent(built_store):
    store = Store.open(built_store)
    for space in SPACES:
        clusters = pd.read_parquet(store.clusters_path(space))
        meta = store.meta(store.clusters_path(space))
        assert list(clusters.columns) == ["cluster"] and clusters["cluster"].dtype == np.int32
        assert len(clusters) == 66
        assert meta["method"] == "kmeans"
        assert sorted(clusters["cluster"].unique()) == list(range(meta["k"]))
        scores = {int(k): s for k, s in meta["silhouette_by_k"].items()}
        assert meta["k"] == max(scores, key=scores.get) and min(scores) == 2
        assert meta["sizes"] == sorted(meta["sizes"], reverse=True)
        records = meta["enrichment"]
        assert records and {r["attribute"] for r in records} <= {"style", "artist"}
        for record in records:
            assert record["fold"] > 1 and 0 <= record["p_value"] <= record["q_value"] <= 1
            members = clusters["cluster"] == record["cluster"]
            assert record["cluster_size"] == members.sum()


def test_the_separability_table_scores_every_attribute_in_every_layer(built_store):
    store = Store.open(built_store)
    table = pd.read_parquet(store.separability_path())
    assert list(table.columns) == [
        "space", "attribute", "given", "metric", "value", "low", "high",
        "baseline", "baseline_low", "baseline_high", "n", "classes", "strata",
    ]
    unconditional = table[table["given"] == ""]
    matrix = unconditional.pivot_table(
        index="attribute", columns="space", values="value", aggfunc="count"
    )
    assert list(matrix.index) == ["artist", "style"]
    assert set(matrix.columns) == {str(s) for s in SPACES}
    assert (matrix == 3).all().all()  # knn, probe, silhouette in every cell
    style = unconditional[unconditional["attribute"] == "style"]
    assert (style["n"] == 66).all() and (style["classes"] == 11).all()
    assert ((style["low"] <= style["value"]) & (style["value"] <= style["high"])).all()
    conditional = table[table["given"] != ""]
    assert ("artist", "style") in set(zip(conditional["attribute"], conditional["given"],
                                          strict=True))
    # The penultimate layer's neighbours share a painting's style far above chance.
    knn = style[(style["metric"] == "knn") & (style["space"] == REFERENCE)].iloc[0]
    assert knn["value"] > knn["baseline_high"]
    meta = store.meta(store.separability_path())
    assert meta["spaces"] == [str(s) for s in SPACES]
    assert "bootstrap" in meta["interval"] and "shuffles" in meta["baseline"]


def test_info_reports_clusters_and_separability(built_store, capsys):
    assert main(["info", str(built_store)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info["clusters"]) == [str(s) for s in SPACES]
    assert all(c["k"] >= 2 and -1 <= c["silhouette"] <= 1 for c in info["clusters"].values())
    style = info["separability"]["style"][REFERENCE]
    assert set(style) == {"knn", "probe", "silhouette"}
    assert style["knn"]["value"] > style["knn"]["baseline"]
    assert REFERENCE in info["separability"]["artist | style"]
