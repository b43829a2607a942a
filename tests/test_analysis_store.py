"""The science side of a store built from 66 real paintings: aligned layer maps, clusters per
layer, the separability table, and what `precompute info` says about them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import panel as pn
import pytest

from explorer.data import load_explorer_data
from explorer.separability_view import scope_note
from precompute.cli import main
from precompute.config import AnalysisConfig, RunConfig
from precompute.errors import ConfigError
from precompute.stages.analyse import plan_groupings, run_analyse, score_space
from precompute.stats.probe import fold_ids, probe_correct
from precompute.stats.separability import assess
from precompute.stats.vectors import normalised
from precompute.store import SpaceKey, Store, read_json

LAYERS = ["_blocks.3", "_blocks.7", "_blocks.11", "penultimate"]
SPACES = [SpaceKey("efficientnet_lite0/pretrained", layer) for layer in LAYERS]
# Every space of the store, as it lists them: the fine-tuned head's first (models by name).
FINETUNED = SpaceKey("efficientnet_lite0/finetuned-style-head", "penultimate")
ALL_SPACES = [*SPACES, FINETUNED]
REFERENCE = "efficientnet_lite0/pretrained/penultimate"


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
    for space in ALL_SPACES:
        clusters = pd.read_parquet(store.clusters_path(space))
        meta = store.meta(store.clusters_path(space))
        assert list(clusters.columns) == ["sample_id", "cluster"]
        assert clusters["cluster"].dtype == np.int32
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
    assert set(matrix.columns) == {str(s) for s in ALL_SPACES}
    assert (matrix[[str(s) for s in SPACES]] == 3).all().all()  # knn, probe, silhouette
    style = unconditional[unconditional["attribute"] == "style"]
    pretrained = style[style["space"] != str(FINETUNED)]
    assert (pretrained["n"] == 66).all() and (pretrained["classes"] == 11).all()
    # the fine-tuned space is scored on its test images only, never on its training images
    tests = int((pd.read_parquet(store.split_path("style"))["split"] == "test").sum())
    assert (style.loc[style["space"] == str(FINETUNED), "n"] == tests).all() and tests < 66
    assert ((style["low"] <= style["value"]) & (style["value"] <= style["high"])).all()
    conditional = table[table["given"] != ""]
    assert ("artist", "style") in set(zip(conditional["attribute"], conditional["given"],
                                          strict=True))
    # The penultimate layer's neighbours share a painting's style far above chance.
    knn = style[(style["metric"] == "knn") & (style["space"] == REFERENCE)].iloc[0]
    assert knn["value"] > knn["baseline_high"]
    meta = store.meta(store.separability_path())
    assert meta["spaces"] == [str(s) for s in ALL_SPACES]
    assert "bootstrap" in meta["interval"] and "shuffles" in meta["baseline"]


def test_probes_scored_in_worker_processes_equal_a_probe_scored_here(built_store):
    """The stage's probes run in worker processes while kNN and silhouettes are scored in the
    stage's own: each cell is what scoring it alone, here, gives."""
    store = Store.open(built_store)
    config = AnalysisConfig(min_class_size=2, shuffles=2, probe_shuffles=1, bootstrap=50)
    table = store.read_images(["style", "artist"])
    sample = np.arange(0, len(table), 2)  # positions in the sample are not store rows
    groupings = plan_groupings(table, ["style", "artist"], [("artist", "style")], sample, 2)
    records = pd.DataFrame(score_space(store, SPACES[0], groupings, sample, config))
    for (attribute, given), grouping in groupings.items():
        points = normalised(np.asarray(store.load_embeddings(SPACES[0]), dtype=np.float32))
        folds = fold_ids(grouping, config.folds, config.seed)
        alone = assess(lambda versions, g=grouping, x=points[grouping.rows], f=folds:
                       probe_correct(x, versions, g, f), grouping, config.probe_shuffles,
                       config.bootstrap, np.random.default_rng(config.seed), blocks=folds).record()
        pooled = records[(records["attribute"] == attribute) & (records["given"] == given)
                         & (records["metric"] == "probe")].iloc[0]
        assert {key: pooled[key] for key in alone} == pytest.approx(alone)
    assert list(records["metric"][:3]) == ["knn", "probe", "silhouette"]


def test_info_reports_clusters_and_separability(built_store, capsys):
    assert main(["info", str(built_store)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info["clusters"]) == [str(s) for s in ALL_SPACES]
    assert all(c["k"] >= 2 and -1 <= c["silhouette"] <= 1 for c in info["clusters"].values())
    style = info["separability"]["style"][REFERENCE]
    assert set(style) == {"knn", "probe", "silhouette"}
    assert style["knn"]["value"] > style["knn"]["baseline"]
    assert REFERENCE in info["separability"]["artist | style"]


def test_analyse_redoes_only_the_layer_whose_scores_are_missing(built_store):
    store = Store.open(built_store)
    config = RunConfig.from_dict(read_json(store.config_path)).analysis
    before = store.read_separability()
    space = SpaceKey("efficientnet_lite0/pretrained", "_blocks.7")
    store.invalidate(store.separability_part_path(space))

    summary = run_analyse(store, config)
    assert summary.made == [str(space)] and summary.up_to_date == len(ALL_SPACES) - 1
    redone = pd.read_parquet(store.separability_part_path(space))
    expected = before[before["space"] == str(space)].reset_index(drop=True)
    pd.testing.assert_frame_equal(redone, expected)  # same seeds, same scores
    pd.testing.assert_frame_equal(store.read_separability(), before)


def test_settings_that_cannot_give_a_score_are_refused_naming_the_setting(built_store):
    store = Store.open(built_store)
    with pytest.raises(ConfigError, match=r"\[analysis\] attributes: title .*artist"):
        run_analyse(store, AnalysisConfig(attributes=["title"]))
    with pytest.raises(ConfigError, match=r"\[analysis\] conditional: \['artist', 'title'\]"):
        run_analyse(store, AnalysisConfig(conditional=[["artist", "title"]]))
    with pytest.raises(ConfigError, match=r"conditional\[0\] = \['artist'\]: list should have"):
        RunConfig.from_dict({"analysis": {"conditional": [["artist"]]}})
    with pytest.raises(ConfigError, match=r"\[analysis\]: folds = 1: input should be greater"):
        RunConfig.from_dict({"analysis": {"folds": 1}})
    with pytest.raises(ConfigError, match=r"\[cluster\]: k_min = 1: input should be greater"):
        RunConfig.from_dict({"cluster": {"k_min": 1}})


def test_scores_can_be_limited_to_the_held_out_part_of_a_fine_tuning_split(built_store, tmp_path):
    """A model fine-tuned on style must not be scored on its training images."""
    copy = Store(shutil.copytree(built_store, tmp_path / "store"))
    test_rows = np.arange(66) % 3 == 0
    copy.write_table(copy.split_path("style"),
                     pd.DataFrame({"split": np.where(test_rows, "test", "train")}))
    copy.commit(copy.split_path("style"), {"target": "style"})
    config = AnalysisConfig(split="style/test", min_class_size=2, shuffles=2, probe_shuffles=1,
                            bootstrap=50, conditional=[])
    penultimate = SpaceKey("efficientnet_lite0/pretrained", "penultimate")
    assert "never trained on" in scope_note(load_explorer_data(str(copy.root)))

    summary = run_analyse(copy, config, spaces=[penultimate])
    assert summary.made == [REFERENCE]
    table = copy.read_separability()
    assert set(table["space"]) == {REFERENCE}  # the other layers' scores are of another config
    assert (table.loc[table["attribute"] == "style", "n"] == test_rows.sum()).all()
    assert copy.meta(copy.separability_path())["split"] == "style/test"
    pn.state.clear_caches()  # the stage ran outside a pipeline, which would record it
    assert scope_note(load_explorer_data(str(copy.root))) == (
        "Scored on the test images of the style split.")
    with pytest.raises(ConfigError, match=r"split = 'artist/test': the store has no split"):
        run_analyse(copy, AnalysisConfig(split="artist/test"), spaces=[penultimate])
