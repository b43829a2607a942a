"""Fine-tuning on real paintings: the split, which parts learn, resume, the fine-tuned feature
space, and test metrics that are scikit-learn's on the saved predictions."""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
)

from precompute.cli import main
from precompute.config import AUGMENTATIONS, ModelConfig, RunConfig, TrainConfig, load_config
from precompute.images import DecodeOptions, open_rgb
from precompute.info import describe_store
from precompute.nn.augment import train_transform
from precompute.nn.backbones import file_id, load_backbone
from precompute.nn.features import LayerTap
from precompute.nn.finetuned import FinetunedSource, backbone_stages, build_network
from precompute.nn.image_dataset import ImageFileDataset
from precompute.stages.train import fit, run_one
from precompute.stats.split import ensure_split, stratified_split
from precompute.stats.vectors import normalised
from precompute.store import MISSING, PATH_COLUMN, SpaceKey, Store
from tests.helpers import HEAD_TRAINING, kill_when, sample_paintings, write_config

MODEL = "efficientnet_lite0/finetuned-style-head"
PRETRAINED = SpaceKey("efficientnet_lite0/pretrained", "penultimate")
FINETUNED = SpaceKey(MODEL, "penultimate")
LAST = "efficientnet_lite0/finetuned-style-last"  # the run of mode "last"


def copy_store(source: Path, destination: Path) -> Path:
    """A private copy of a built store without its fine-tuning (ingested and embedded), to
    train in."""
    shutil.copytree(source, destination,
                    ignore=shutil.ignore_patterns("models", "splits", "finetuned-*"))
    return destination


def last_stage_config(small_tree: Path, folder: Path, epochs: int) -> RunConfig:
    """Train the last stage and the head on 64-pixel images: small enough for two cores."""
    config = load_config(write_config(folder / "config.toml", small_tree))
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, image_size=64),
        train=TrainConfig(
            target="style", mode="last", last_stages=1, hidden=32, image_size=64,
            epochs=epochs, batch_size=16, augment=["hflip", "color_jitter"], patience=0,
            workers=1,
        ),
    )


@pytest.fixture(scope="module")
def head_store(built_store: Path) -> Path:
    """The 66-painting store after `precompute all`, which trains a head on style."""
    return built_store


@pytest.fixture(scope="module")
def last_stage_run(built_store: Path, small_tree: Path, tmp_path_factory):
    """A 3-epoch run that trains the last stage of the network on the images."""
    work = tmp_path_factory.mktemp("last")
    store = Store.open(copy_store(built_store, work / "store"))
    return store, run_one(store, last_stage_config(small_tree, work, epochs=3))


def style_agreement(vectors: np.ndarray, styles: np.ndarray) -> float:
    """How often an image's nearest other image shares its style."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(normalised(vectors))
    _, neighbours = index.search(normalised(vectors), 2)
    return float((styles[neighbours[:, 1]] == styles).mean())


# ------------------------------------------------------------------------------ the split
def test_the_split_is_stratified_reproducible_and_leaves_unlabelled_images_out():
    labels = np.array([p.parent.name for p in sample_paintings()], dtype=object)  # 11 × 6
    labels[[0, 7]] = MISSING
    parts, too_small = stratified_split(labels, 0.2, 0.2, seed=0)
    again, _ = stratified_split(labels, 0.2, 0.2, seed=0)
    other, _ = stratified_split(labels, 0.2, 0.2, seed=1)
    assert (parts == again).all() and (parts != other).any()
    assert list(parts[[0, 7]]) == ["unlabelled", "unlabelled"] and too_small == []
    for style in set(labels) - {MISSING}:
        counts = Counter(parts[labels == style])
        assert counts["val"] == 1 and counts["test"] == 1 and counts["train"] >= 3, style


# ------------------------------------------------------------------------------ the network
def test_modes_choose_which_parts_of_the_network_learn():
    lite = ModelConfig(backbone="efficientnet_lite0")
    head = build_network(lite, 5, TrainConfig(mode="head"))
    last = build_network(lite, 5, TrainConfig(mode="last", last_stages=2))
    full = build_network(lite, 5, TrainConfig(mode="full"))
    assert head.trainable == ["_fc"]
    assert last.trainable == ["_blocks.15", "_conv_head", "_bn1", "_fc"]
    assert full.trainable == [""]
    learning = {n for n, p in last.model.named_parameters() if p.requires_grad}
    assert learning and all(n.startswith(("_blocks.15.", "_conv_head.", "_bn1.", "_fc."))
                            for n in learning)
    assert all(p.requires_grad for p in full.model.parameters())
    assert all(n.startswith("_fc.") for n, p in head.model.named_parameters() if p.requires_grad)
    last.train_mode()
    assert last.model._bn1.training and last.model._fc.training
    assert not last.model._bn0.training and not last.model._blocks[14].training

    resnet = build_network(ModelConfig(backbone="resnet50", weights="none"), 5, TrainConfig())
    assert backbone_stages(resnet.model, resnet.head) == [
        ["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]
    ]


def test_every_augmentation_changes_the_training_images():
    backbone = load_backbone(ModelConfig(backbone="efficientnet_lite0"))
    painting = open_rgb(sample_paintings()[0], DecodeOptions())
    plain = train_transform(backbone, 64, [])(painting)
    assert plain.shape == (3, 64, 64)
    for name in AUGMENTATIONS:
        transform = train_transform(backbone, 64, [name])
        outputs = []
        for seed in range(4):
            torch.manual_seed(seed)
            outputs.append(transform(painting))
        assert all(out.shape == (3, 64, 64) for out in outputs), name
        assert any(not torch.allclose(out, plain) for out in outputs), name


def test_augmented_images_are_the_same_whichever_process_decodes_them():
    """Each image's crop and flip come from (seed, epoch, row): a training epoch sees the same
    images with loader processes as without, and another epoch other ones."""
    backbone = load_backbone(ModelConfig(backbone="efficientnet_lite0"))
    dataset = ImageFileDataset(sample_paintings(1)[:6], train_transform(
        backbone, 64, ["random_resized_crop", "hflip", "color_jitter"]), DecodeOptions())

    def epoch(epoch: int, workers: int) -> torch.Tensor:
        dataset.random_key = (0, epoch)
        torch.manual_seed(epoch)  # as the train stage seeds each epoch
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=workers)
        return torch.cat([images for images, _rows in loader])

    in_process = epoch(1, workers=0)
    assert torch.equal(in_process, epoch(1, workers=2))
    assert not torch.equal(in_process, epoch(2, workers=0))


# ------------------------------------------------------------------------------ head mode
def test_head_training_adds_a_finetuned_space_beside_the_pretrained_one(head_store):
    store = Store.open(head_store)
    assert store.spaces()[-1] == FINETUNED and PRETRAINED in store.spaces()
    finetuned = np.asarray(store.load_embeddings(FINETUNED), dtype=np.float32)
    assert finetuned.shape == (66, 32) and np.isfinite(finetuned).all()
    assert store.projection_methods(FINETUNED) == store.projection_methods(PRETRAINED)
    assert store.meta(store.index_path(FINETUNED))["count"] == 66

    best = store.checkpoint_path(MODEL, "best")
    trained, embedded = store.meta(best), store.meta(store.embeddings_path(FINETUNED))
    assert embedded["recipe"]["checkpoint"] == [trained["checkpoint"]] == [file_id(best)]
    assert "fine-tuned on style" in embedded["weights"]

    # The trained hidden layer groups the training paintings by style far better than ImageNet
    # features do: it is a new feature space, not a copy.
    styles = store.read_images(["style"])["style"].to_numpy()
    train = pd.read_parquet(store.split_path("style"))["split"].to_numpy() == "train"
    pretrained = np.asarray(store.load_embeddings(PRETRAINED), dtype=np.float32)
    assert style_agreement(finetuned[train], styles[train]) > style_agreement(
        pretrained[train], styles[train]
    )


def test_head_mode_embeddings_and_predictions_match_a_pass_of_the_finetuned_network(head_store):
    """The head-mode shortcut (the head applied to stored ImageNet embeddings) gives what the
    whole fine-tuned network gives on the images."""
    store = Store.open(head_store)
    backbone = FinetunedSource(store, MODEL).load()
    meta = store.images_meta()
    paths = [Path(meta["root"]) / p for p in store.read_images([PATH_COLUMN])[PATH_COLUMN]]
    dataset = ImageFileDataset(paths, backbone.eval_transform(), DecodeOptions(**meta["decode"]))
    rows = [0, 13, 29, 41, 65]
    images = torch.stack([dataset[row][0] for row in rows])
    with torch.inference_mode():
        passed = LayerTap(backbone.model, ["penultimate"]).eval()(images)["penultimate"]
        logits = backbone.model(images)
    stored = np.asarray(store.load_embeddings(FINETUNED)[rows], dtype=np.float32)
    assert np.allclose(passed.numpy(), stored, rtol=2e-2, atol=2e-2)

    predictions = pd.read_parquet(store.predictions_path(MODEL))
    classes = store.meta(store.predictions_path(MODEL))["classes"]
    assert list(predictions["predicted"].iloc[rows]) == [classes[i] for i in logits.argmax(1)]


def test_metrics_equal_scikit_learns_on_the_saved_predictions(head_store):
    store = Store.open(head_store)
    path = store.predictions_path(MODEL)
    predictions, meta = pd.read_parquet(path), store.meta(path)
    styles = store.read_images(["style"])["style"]
    assert list(predictions.columns) == ["sample_id", "split", "predicted", "confidence",
                                         "correct"]
    assert (predictions["sample_id"] == store.read_images(["sample_id"])["sample_id"]).all()
    assert len(predictions) == 66 and predictions["confidence"].dtype == np.float32
    assert predictions["confidence"].between(1 / 11, 1).all()
    assert (predictions["split"] == pd.read_parquet(store.split_path("style"))["split"]).all()
    assert (predictions["correct"] == (predictions["predicted"] == styles)).all()

    test = predictions["split"] == "test"
    truth, predicted = styles[test], predictions["predicted"][test]
    metrics = meta["metrics"]
    assert metrics["test_count"] == int(test.sum()) == 22
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert metrics["f1_weighted"] == pytest.approx(f1_score(truth, predicted, average="weighted"))
    assert metrics["f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    report = classification_report(truth, predicted, output_dict=True, zero_division=0)
    for row in metrics["per_class"]:
        expected = report[row["class"]]
        assert row["precision"] == pytest.approx(expected["precision"]), row["class"]
        assert row["recall"] == pytest.approx(expected["recall"]), row["class"]
        assert row["f1"] == pytest.approx(expected["f1-score"]), row["class"]
        assert row["support"] == expected["support"], row["class"]
    labels = metrics["confusion"]["labels"]
    assert metrics["confusion"]["matrix"] == confusion_matrix(truth, predicted,
                                                              labels=labels).tolist()
    assert metrics["too_small"] == []
    assert meta["target"] == "style" and meta["classes"] == sorted(styles.unique())
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(meta["history"][0])


def test_info_and_a_second_run_report_the_finetuned_model(head_store, capsys):
    assert main(["all", "--store", str(head_store)]) == 0
    printed = capsys.readouterr().out
    assert f"train {MODEL}: up to date" in printed and "test accuracy" in printed
    assert "project: up to date" in printed
    store = Store.open(head_store)
    metrics = store.meta(store.predictions_path(MODEL))["metrics"]
    assert describe_store(store)["metrics"] == {
        MODEL: {
            "target": "style", "mode": "head",
            **{key: metrics[key] for key in ("accuracy", "f1_weighted", "f1_macro", "folds",
                                             "test_count")},
        }
    }


def test_a_changed_train_setting_starts_over_and_a_raised_epoch_limit_resumes(
    built_store, small_tree, tmp_path
):
    store = Store.open(copy_store(built_store, tmp_path / "store"))
    config = load_config(write_config(tmp_path / "config.toml", small_tree, extra=HEAD_TRAINING))
    config.train = dataclasses.replace(config.train, epochs=2, patience=0)
    assert run_one(store, config).epochs == 2
    config.train = dataclasses.replace(config.train, epochs=3, lr=3e-3)
    changed = run_one(store, config)
    assert changed.resumed_from == 0 and changed.epochs == 3
    config.train = dataclasses.replace(config.train, epochs=5)
    raised = run_one(store, config)
    assert raised.resumed_from == 3 and raised.epochs == 5
    assert [e["epoch"] for e in store.meta(store.checkpoint_path(MODEL, "best"))["history"]] == [
        1, 2, 3, 4, 5
    ]


def test_a_class_with_a_single_image_trains_and_is_reported(
    built_store, small_tree, tmp_path, capsys
):
    # The same paintings read from a manifest that gives one painting a style of its own.
    store_dir = copy_store(built_store, tmp_path / "store")
    table = Store.open(store_dir).read_images([PATH_COLUMN, "style"])
    table = table.rename(columns={PATH_COLUMN: "path"})
    table.loc[0, "style"] = "Outsider_Art"
    table.to_csv(tmp_path / "paintings.csv", index=False)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[dataset]\nroot = "{small_tree.as_posix()}"\nmanifest = "paintings.csv"\n\n'
        '[model]\nbackbone = "efficientnet_lite0"\n\n'
        '[train]\ntarget = "style"\nhidden = 16\nepochs = 5\n\n'
        '[projection]\nmethods = ["pca"]\n',
        encoding="utf-8",
    )
    assert main(["-q", "all", "--config", str(config), "--store", str(store_dir)]) == 0
    assert "too small to split, trained on only: Outsider_Art" in capsys.readouterr().out

    store = Store.open(store_dir)
    assert store.meta(store.split_path("style"))["too_small"] == ["Outsider_Art"]
    assert pd.read_parquet(store.split_path("style"))["split"][0] == "train"
    meta = store.meta(store.predictions_path(MODEL))
    assert meta["metrics"]["too_small"] == ["Outsider_Art"]
    assert len(meta["classes"]) == 12 and "Outsider_Art" in meta["classes"]


def test_bad_train_settings_are_reported_in_one_line(built_store, small_tree, tmp_path, capsys):
    store = copy_store(built_store, tmp_path / "store")
    for name, train, expected in [
        ("mode", 'target = "style"\nmode = "partial"',
         "mode = 'partial': input should be 'linear', 'head', 'last' or 'full'"),
        ("missing", 'target = "colour"', "'colour' is not an attribute"),
        ("numeric", 'target = "year"', "'year' is numeric, not categorical"),
    ]:
        config = write_config(tmp_path / f"{name}.toml", small_tree, extra=f"[train]\n{train}\n")
        assert main(["-q", "train", "--config", str(config), "--store", str(store)]) == 2, name
        error = capsys.readouterr().err.strip()
        assert error.startswith("precompute: error:") and expected in error, error
        assert len(error.splitlines()) == 1, error


# ------------------------------------------------------------------------ the network on images
def test_training_the_last_stage_lowers_the_loss_and_keeps_only_what_it_trained(last_stage_run):
    store, summary = last_stage_run
    best = store.checkpoint_path(LAST, "best")
    trained = store.meta(best)
    losses = [epoch["train_loss"] for epoch in trained["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert trained["trainable"] == ["_conv_head", "_bn1", "_fc"]
    assert trained["augmentation"] == ["hflip", "color_jitter"]

    checkpoint = torch.load(best, weights_only=True)
    assert {key.split(".")[0] for key in checkpoint["model"]} == {"_conv_head", "_bn1", "_fc"}
    pretrained = load_backbone(ModelConfig(backbone="efficientnet_lite0")).model.state_dict()
    assert not torch.equal(checkpoint["model"]["_conv_head.weight"],
                           pretrained["_conv_head.weight"])

    assert store.load_embeddings(SpaceKey(LAST, "penultimate")).shape == (66, 32)
    assert "(last, best epoch" in summary.line() and summary.evaluation.test_count == 11


def test_resume_continues_from_the_last_finished_epoch_with_the_same_state(
    last_stage_run, built_store, small_tree, tmp_path
):
    """Stopped after epoch 2 and continued to 3, training repeats the uninterrupted run's
    numbers: the model, optimiser, scheduler and random state were all restored."""
    reference, _ = last_stage_run
    store = Store.open(copy_store(built_store, tmp_path / "store"))
    config = last_stage_config(small_tree, tmp_path, epochs=2)
    split = ensure_split(store, config.train)
    first = fit(store, config, LAST, split, None)
    assert first.epochs == 2 and first.resumed_from == 0
    config.train = dataclasses.replace(config.train, epochs=3)
    resumed = fit(store, config, LAST, split, None)
    assert resumed.resumed_from == 2 and resumed.epochs == 3

    history = store.meta(store.checkpoint_path(LAST, "best"))["history"]
    uninterrupted = reference.meta(reference.checkpoint_path(LAST, "best"))["history"]
    assert [e["epoch"] for e in history] == [1, 2, 3]
    for ours, theirs in zip(history, uninterrupted, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4), (ours["epoch"], key)


def test_info_reports_a_killed_training_run_as_unfinished(built_store, small_tree, tmp_path):
    store = Store.open(copy_store(built_store, tmp_path / "store"))
    training = ('[train]\ntarget = "style"\nmode = "last"\nlast_stages = 1\nhidden = 32\n'
                "image_size = 64\nepochs = 100\npatience = 0\nbatch_size = 16\nworkers = 1\n")
    config = write_config(tmp_path / "config.toml", small_tree, extra=training)
    last = store.checkpoint_path(LAST, "last")
    kill_when(["-q", "train", "--config", str(config), "--store", str(store.root)], last.exists)
    assert last.exists(), "the run should have finished an epoch before it was killed"

    [unfinished] = describe_store(store)["unfinished"]
    assert unfinished["stage"] == "train" and unfinished["model"] == LAST
    assert 1 <= unfinished["epochs_done"] < 100
