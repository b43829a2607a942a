"""Several backbones and training runs in one store, k-fold training, scores on unseen images,
and the store format that names them: real networks (EfficientNet-Lite0 and Lite1) on real
paintings."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from precompute.cli import main
from precompute.config import AnalysisConfig, RunConfig
from precompute.nn.finetuned import FinetunedSource
from precompute.nn.query import model_source
from precompute.nn.sources import PretrainedSource
from precompute.stages.analyse import scored_rows
from precompute.stats.split import TEST, TRAIN, UNLABELLED, ensure_split
from precompute.store import SpaceKey, Store
from tests.conftest import SMALL_ANALYSIS
from tests.helpers import write_config

LITE0, LITE1 = "efficientnet_lite0", "efficientnet_lite1"
BACKBONES = f'backbones = ["{LITE0}", "{LITE1}"]'
CHEAP = """
[projection]
methods = ["pca"]
"""
RUNS = """
[train]
target = "style"
modes = ["linear", "head"]
test_fraction = 0.34
hidden = 32
epochs = 15
patience = 4
"""
FOLDS = RUNS.replace('modes = ["linear", "head"]', 'modes = ["linear", "head"]\nfolds = 3')


def build(folder: Path, tree: Path, train: str, model: str = BACKBONES) -> Path:
    config = write_config(folder / "config.toml", tree, extra=SMALL_ANALYSIS + CHEAP + train,
                          model=model, embed='layers = ["penultimate"]')
    store = folder / "store"
    assert main(["-q", "all", "--config", str(config), "--store", str(store)]) == 0
    return store


@pytest.fixture(scope="module")
def runs_store(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two backbones × modes linear and head on style, one train/validation/test split."""
    return build(tmp_path_factory.mktemp("runs"), small_tree, RUNS)


@pytest.fixture(scope="module")
def folds_store(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One backbone × modes linear and head with 3 folds."""
    return build(tmp_path_factory.mktemp("folds"), small_tree, FOLDS, model="")


def head_space(backbone: str) -> SpaceKey:
    return SpaceKey(f"{backbone}/finetuned-style-head", "penultimate")


def test_two_backbones_and_two_modes_coexist_and_are_each_listed_projected_and_indexed(
    runs_store, capsys
):
    store = Store.open(runs_store)
    expected = [SpaceKey(f"{b}/{run}", "penultimate")
                for b in (LITE0, LITE1) for run in ("pretrained", "finetuned-style-head")]
    assert store.spaces() == expected
    for space in expected:
        assert store.projection_methods(space) == ["pca"]
        assert store.meta(store.index_path(space)) is not None
        assert store.meta(store.clusters_path(space)) is not None
        points = pd.read_parquet(store.points_path(space))
        assert list(points.columns) == ["sample_id", "pca_x", "pca_y", "cluster"]
    runs = [f"{b}/finetuned-style-{m}" for b in (LITE0, LITE1) for m in ("head", "linear")]
    assert store.finetuned_models() == runs
    assert main(["compare", str(runs_store)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + len(runs) and all(any(r in line for line in table) for r in runs)
    assert all("test images" in line for line in table[1:])
    separability = store.read_separability()
    assert set(separability["space"]) == {str(space) for space in expected}


def test_linear_mode_is_a_logistic_regression_scored_on_the_test_split(runs_store):
    store = Store.open(runs_store)
    path = store.predictions_path(f"{LITE0}/finetuned-style-linear")
    meta = store.meta(path)
    predictions = pd.read_parquet(path)
    split = pd.read_parquet(store.split_path("style"))
    assert meta["mode"] == "linear" and len(meta["chosen_c"]) == 1
    assert (predictions["sample_id"] == split["sample_id"]).all()
    test = (predictions["split"] == TEST).to_numpy()
    assert meta["metrics"]["test_count"] == int(test.sum()) > 0
    assert meta["metrics"]["test_with_duplicate_in_training"] == 0
    styles = store.read_images(["style"])["style"].to_numpy()
    accuracy = float((predictions["predicted"].to_numpy()[test] == styles[test]).mean())
    assert meta["metrics"]["accuracy"] == pytest.approx(accuracy)
    assert accuracy > 1 / 11  # better than chance on 11 styles


def test_a_second_run_does_not_change_the_first_runs_files(runs_store, small_tree, tmp_path):
    store_dir = shutil.copytree(runs_store, tmp_path / "store")
    first = {path: hashlib.sha1(path.read_bytes()).hexdigest()
             for folder in (store_dir / "models" / LITE0 / "finetuned-style-head",
                            store_dir / "spaces" / LITE0 / "finetuned-style-head")
             for path in sorted(folder.rglob("*")) if path.is_file()}
    config = write_config(tmp_path / "config.toml", small_tree,
                          extra=SMALL_ANALYSIS + CHEAP + RUNS.replace(
                              'modes = ["linear", "head"]', 'mode = "head"\nname = "wider"')
                          .replace("hidden = 32", "hidden = 48"),
                          embed='layers = ["penultimate"]')
    assert main(["-q", "train", "--config", str(config), "--store", str(store_dir)]) == 0
    assert {path: hashlib.sha1(path.read_bytes()).hexdigest() for path in first} == first
    store = Store.open(store_dir)
    assert f"{LITE0}/wider" in store.finetuned_models()
    assert f"{LITE0}/finetuned-style-head" in store.finetuned_models()
    assert store.meta(store.embeddings_path(SpaceKey(f"{LITE0}/wider", "penultimate")))["dim"] \
        == 48


def test_folds_predict_every_labelled_image_exactly_once_with_a_model_that_never_saw_it(
    folds_store
):
    store = Store.open(folds_store)
    split = pd.read_parquet(store.split_path("style"))
    assert set(split["fold"]) == {1, 2, 3} and (split["split"] != UNLABELLED).all()
    config = RunConfig.from_dict(json.loads(store.config_path.read_text()))
    shared = ensure_split(store, config.train)
    model = f"{LITE0}/finetuned-style-head"
    vectors = torch.from_numpy(np.asarray(
        store.load_embeddings(SpaceKey(model, "penultimate")), dtype=np.float32))
    predictions = pd.read_parquet(store.predictions_path(model))
    meta = store.meta(store.predictions_path(model))
    for fold in (1, 2, 3):
        trained = store.meta(store.checkpoint_path(model, "best", fold))
        assert trained["recipe"]["split"]["fold"] == fold
        checkpoint = torch.load(store.checkpoint_path(model, "best", fold), weights_only=True)
        weight = checkpoint["model"][f"{checkpoint['classifier']}.weight"]
        bias = checkpoint["model"][f"{checkpoint['classifier']}.bias"]
        rows = np.flatnonzero(split["fold"] == fold)
        # the fold's own model made the stored predictions of its images …
        index = (vectors[rows] @ weight.float().T + bias.float()).argmax(1).numpy()
        assert list(predictions["predicted"].iloc[rows]) == [meta["classes"][i] for i in index]
        # … and never trained on them: in the split it trained with they are its test part
        fold_split = shared.fold(fold, config.train.val_fraction, config.train.seed)
        assert fold_split.recipe == trained["recipe"]["split"]
        assert (fold_split.parts[rows] == TEST).all()
        assert not np.isin(fold_split.rows(TRAIN), rows).any()
        assert trained["images_seen"] == trained["epochs"] * len(fold_split.rows(TRAIN))
    metrics = meta["metrics"]
    assert metrics["folds"] == 3 and metrics["test_count"] == len(split)
    assert sum(f["test_count"] for f in metrics["per_fold"]) == len(split)
    assert metrics["accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in
                                                         metrics["per_fold"]]))
    assert metrics["accuracy_std"] == pytest.approx(np.std([f["accuracy"] for f in
                                                            metrics["per_fold"]]))
    linear = store.meta(store.predictions_path(f"{LITE0}/finetuned-style-linear"))
    assert linear["metrics"]["folds"] == 3 and len(linear["chosen_c"]) == 3


def test_a_finetuned_space_is_scored_on_images_its_model_never_trained_on(
    runs_store, folds_store, caplog
):
    store = Store.open(runs_store)
    tests = int((pd.read_parquet(store.split_path("style"))["split"] == TEST).sum())
    finetuned = store.meta(store.separability_part_path(head_space(LITE0)))
    pretrained = store.meta(store.separability_part_path(
        SpaceKey(f"{LITE0}/pretrained", "penultimate")))
    assert finetuned["scored_images"] == tests < 66 and "test images" in finetuned["scored"]
    assert pretrained["scored_images"] == 66
    scores = store.read_separability()
    assert scores[scores["space"] == str(head_space(LITE0))]["n"].max() <= tests
    info = json.loads(_info(runs_store))
    assert "never trained on" in info["layers"][str(head_space(LITE0))]["separability_scored_on"]

    with caplog.at_level(logging.WARNING):
        rows, scored = scored_rows(store, head_space(LITE0),
                                   AnalysisConfig(training_images=True), 66)
    assert len(rows) == 66 and "trained on" in scored and "optimistic" in caplog.text

    folded = Store.open(folds_store)
    out_of_fold = folded.meta(folded.separability_part_path(head_space(LITE0)))
    assert out_of_fold["scored_images"] == 66 and "folds" in out_of_fold["scored"]


def _info(store: Path) -> str:
    from precompute.info import describe_store

    return json.dumps(describe_store(Store.open(store)))


def test_the_query_model_of_a_space_is_the_one_that_made_it(runs_store):
    store = Store.open(runs_store)
    saved = json.loads(store.config_path.read_text())
    assert saved["model"]["backbones"] == [LITE0, LITE1]  # the config names both
    source = model_source(store, SpaceKey(f"{LITE1}/pretrained", "penultimate"))
    assert isinstance(source, PretrainedSource) and source.config.backbone == LITE1
    tuned = model_source(store, head_space(LITE1))
    assert isinstance(tuned, FinetunedSource) and tuned.key == f"{LITE1}/finetuned-style-head"
    assert tuned.load().name == LITE1


def test_changing_workers_redoes_nothing(runs_store, small_tree, tmp_path, capsys):
    config = write_config(tmp_path / "config.toml", small_tree,
                          extra=SMALL_ANALYSIS + CHEAP + RUNS.replace(
                              "patience = 4", "patience = 4\nworkers = 1")
                          + "\n", model=BACKBONES, embed='layers = ["penultimate"]')
    text = config.read_text().replace("workers = 2", "workers = 1").replace(
        "[dataset]", "[dataset]\nworkers = 1")
    config.write_text(text)
    assert main(["all", "--config", str(config), "--store", str(runs_store)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    table = lines.index(next(line for line in lines if line.startswith("stage ")))
    stages = lines[:table]
    assert stages and all("up to date" in line for line in stages), stages
    # the run ends with one row per stage: its wall time and what it did
    names = [line.split()[0] for line in lines[table + 1:-1] if line[0] != " "]
    assert names == ["ingest", "embed", "thumbs", "project", "quality", "train", "project",
                     "index", "cluster", "analyse"]


def test_store_json_records_the_versions_that_wrote_it(runs_store):
    manifest = json.loads((runs_store / "store.json").read_text())
    assert manifest["format_version"] == 2
    assert {"feature-space-explorer", "torch", "scikit-learn", "umap-learn", "openTSNE"} <= set(
        manifest["written_by"])


def test_a_version_1_store_gets_one_line_saying_how_to_rebuild_it(tmp_path, capsys):
    (tmp_path / "store.json").write_text(json.dumps({"format_version": 1}))
    assert main(["info", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "format version 1" in error and "precompute all --config" in error
    assert str(tmp_path / "config.json") in error


def test_the_metrics_tab_compares_the_runs_and_shows_the_chosen_one(runs_store):
    from explorer.page import Explorer

    explorer = Explorer(store=str(runs_store))
    data = explorer.data
    # each run's predictions are attributes of their own, the split once per target
    for run in ("efficientnet_lite0 head", "efficientnet_lite1 linear"):
        assert f"predicted style · {run}" in data.kinds and f"style correct · {run}" in data.kinds
    assert "style split" in data.kinds

    from explorer.metrics_view import metrics_panel

    panel = metrics_panel(data, explorer.state)
    table, chosen = panel[0].object, panel[1]
    runs = Store.open(runs_store).finetuned_models()
    assert all(run in table for run in runs) and table.count("<tr>") == 1 + len(runs)
    assert sorted(chosen.options) == runs
    details = panel[2]
    assert len(details) == 1, "only the run shown first has its details built on opening"
    chosen.value = f"{LITE1}/finetuned-style-linear"
    shown = [part for part in details if part.visible]  # each run's details kept, one shown
    assert len(shown) == 1 and len(details) == 2
    html_of_run = "".join(str(getattr(part, "object", "")) for part in _walk(shown[0]))
    assert f"{LITE1}/finetuned-style-linear" in html_of_run


def _walk(viewable):
    yield viewable
    for child in getattr(viewable, "objects", []) or []:
        yield from _walk(child)


def test_run_settings_that_cannot_work_are_refused_in_one_line():
    from precompute.errors import ConfigError

    refused = {
        "folds = 5 trains one model per fold in modes linear and head; mode last":
            {"train": {"mode": "last", "folds": 5}},
        "name = 'pretrained' is the backbone's own weights":
            {"train": {"name": "pretrained"}},
        "names one run, but modes":
            {"train": {"name": "mine", "modes": ["linear", "head"]}},
        "name = '../up'": {"train": {"name": "../up"}},
        "fits one network, but backbones":
            {"model": {"backbones": [LITE0, LITE1], "weights": "IMAGENET1K_V1"}},
    }
    for message, settings in refused.items():
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
            RunConfig.from_dict(settings)
