"""Train stage: for every backbone and training mode, fine-tune on one attribute, embed every
image with the best checkpoint, and evaluate it on the test split (or out of fold).

Each run (`<backbone>/finetuned-<target>-<mode>`) has its own checkpoints, spaces and
predictions, so a second run never replaces a first. Mode "linear" fits a logistic regression
(stages/linear.py) and makes no new space.

Mode "head" trains the new head on the store's pretrained penultimate embeddings, computed once
(no forward pass per epoch, so augmentation does not apply), and the fine-tuned penultimate
embeddings are the head's hidden layer applied to them; modes "last" and "full" run the network
on augmented images and embed the images again with the trained network. After every epoch the
trained weights, optimiser, scheduler and early-stopping state go to `last.pt`, so a killed run
continues after its last finished epoch; `best.pt` keeps the epoch with the lowest validation
loss and is marked complete (its sidecar) when training ends.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset
from tqdm.auto import tqdm

from precompute.config import RunConfig, TrainConfig
from precompute.errors import TrainingError
from precompute.images import DecodeOptions
from precompute.nn.augment import train_transform
from precompute.nn.backbones import file_id
from precompute.nn.device import (
    autocast_dtype,
    describe,
    mixed_precision,
    pick_device,
    prepare_model,
)
from precompute.nn.distributed import SINGLE, Shard, wait_for_all
from precompute.nn.features import PENULTIMATE
from precompute.nn.finetuned import (
    FinetunedNetwork,
    FinetunedSource,
    build_network,
    load_trained_state,
    run_model,
)
from precompute.nn.image_dataset import ImageFileDataset, loader_workers
from precompute.nn.sources import PretrainedSource, pretrained_space
from precompute.processes import dies_with_this_process
from precompute.stages.embed import (
    embed_in_every_process,
    embedding_recipe,
    storable,
)
from precompute.stages.evaluate import EvaluationSummary, fold_numbers, fold_rows, run_evaluate
from precompute.stages.linear import fit_linear
from precompute.stats.split import TRAIN, VAL, Split, ensure_split
from precompute.store import PATH_COLUMN, SpaceKey, Store, atomic_path, jsonable, sidecar_path

log = logging.getLogger(__name__)

# Settings that change when or where training stops, not what each epoch does: a run may
# continue from a checkpoint made with other values.
NOT_IN_RESUME_RECIPE = ("epochs", "patience")
NOT_IN_RECIPE = ("workers", "device")


@dataclass
class Progress:
    """Where a training run stands; saved in `last.pt` after every epoch."""

    epoch: int = 0  # last finished epoch
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the validation loss last improved
    stopped: bool = False  # early stopping triggered
    seconds: float = 0.0  # training time so far, over all runs
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Checkpoints:
    """A training's two checkpoint files, and the recipe `last.pt` must have to be resumed."""

    best: Path  # the epoch with the lowest validation loss
    last: Path  # the last finished epoch, with optimiser, scheduler and progress
    resume_recipe: dict[str, Any]


@dataclass
class TrainingSetup:
    """What one training works with, built by `_setup`."""

    network: FinetunedNetwork
    module: nn.Module  # the part trained and validated: the new head in mode "head"
    replica: nn.Module  # `module`, or its DistributedDataParallel replica
    device: torch.device
    classes: list[str]
    labels: torch.Tensor  # class index of every image row, -1 when unlabelled
    train_loader: DataLoader
    val_loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    criterion: nn.Module


@dataclass
class TrainSummary:
    target: str = ""
    model: str = ""
    folds: int = 1
    epochs: int = 0
    best_epoch: int = 0
    best_epochs: list[int] = field(default_factory=list)  # one per fold, with folds
    resumed_from: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    device: str = ""
    mode: str = ""
    up_to_date: bool = False
    too_small: list[str] = field(default_factory=list)
    evaluation: EvaluationSummary | None = None

    def line(self) -> str:
        if not self.target:
            return "train: no [train] target in the config; nothing to train"
        best = self.best_epochs or [self.best_epoch]
        best_epoch = f"best epoch{'s' if len(best) > 1 else ''} {', '.join(map(str, best))}"
        if self.up_to_date:
            done = "up to date" if self.mode == "linear" else (
                f"up to date ({best_epoch} of {self.epochs})")
        elif self.mode == "linear":
            done = f"logistic regression in {self.seconds:.1f} s"
        else:
            notes = [self.mode, best_epoch]
            if self.stopped_early:
                notes.append("stopped early")
            if self.resumed_from:
                notes.append(f"resumed after epoch {self.resumed_from}")
            done = (
                f"{self.epochs} epochs in {self.seconds:.1f} s on {self.device} "
                f"({', '.join(notes)})"
            )
        if self.folds > 1 and not self.up_to_date:
            done = f"{self.folds} folds, {done}"
        line = f"train {self.model}: {done}"
        if self.evaluation is not None:
            line += f"; {self.evaluation.line()}"
        if self.too_small:
            line += f"; too small to split, trained on only: {', '.join(self.too_small)}"
        return line


def run_train(
    store: Store, config: RunConfig, force: bool = False, shard: Shard = SINGLE
) -> list[TrainSummary]:
    """Every configured training run: each backbone × each mode, on the same split (none
    without a target)."""
    if not config.train.target:
        return []
    return [
        run_one(store, dataclasses.replace(config, model=model, train=train), force, shard)
        for model in config.model.each_backbone() for train in config.train.each_mode()
    ]


def run_one(
    store: Store, config: RunConfig, force: bool = False, shard: Shard = SINGLE
) -> TrainSummary:
    """One training run (one backbone, one mode): split, fine-tune (one model per fold), embed
    with the best checkpoints and evaluate; each step skips work that is up to date and resumes
    where it stopped.

    Under torchrun (`shard` of several, inside `distributed.process_group`) every process trains
    one replica with DistributedDataParallel on its share of each epoch and embeds its block of
    the images; the first process alone splits, writes checkpoints and evaluates."""
    train = config.train
    key = run_model(config.model, train)
    if shard.is_main:
        split = ensure_split(store, train, force=force)
    wait_for_all(shard)
    if not shard.is_main:
        split = ensure_split(store, train)  # the one the first process saved
    if train.mode == "linear":
        summary = TrainSummary(train.target, key, folds=split.fold_count, mode=train.mode)
        features = _pretrained_features(store, config, shard)
        if shard.is_main:
            summary.evaluation = fit_linear(store, config, key, split, features, force=force)
            summary.up_to_date = summary.evaluation.skipped
            summary.seconds = store.meta(store.predictions_path(key))["train_seconds"]
        return summary
    features = _pretrained_features(store, config, shard) if train.mode == "head" else None
    summary = _over_folds([
        fit(store, config, key, split.fold(fold, train.val_fraction, train.seed) if fold
            else split, features, fold=fold, force=force, shard=shard)
        for fold in fold_numbers(split)
    ])
    wait_for_all(shard)  # best.pt is complete before any process embeds with it
    if features is not None:
        # The frozen backbone's blocks are the pretrained ones: only the head's space is new.
        if shard.is_main:
            _embed_through_head(store, key, split, pretrained_space(config.model), features,
                                config.embed.dtype, force=force)
    else:
        source = FinetunedSource(store, key)
        layers = list(dict.fromkeys([PENULTIMATE, *config.embed.layers]))
        embed_config = dataclasses.replace(config.embed, layers=layers)
        log.info("%s", embed_in_every_process(store, embed_config, source, force, shard).line())
    if shard.is_main:
        summary.evaluation = run_evaluate(store, split, key, force=force)
    return summary


def _over_folds(fits: list[TrainSummary]) -> TrainSummary:
    """One summary of a run's trainings, one per fold (or just one)."""
    return dataclasses.replace(
        fits[-1], folds=len(fits), epochs=sum(f.epochs for f in fits),
        best_epochs=[f.best_epoch for f in fits] if len(fits) > 1 else [],
        seconds=sum(f.seconds for f in fits), up_to_date=all(f.up_to_date for f in fits),
        resumed_from=max(f.resumed_from for f in fits),
        stopped_early=any(f.stopped_early for f in fits),
    )


def fit(
    store: Store, config: RunConfig, key: str, split: Split, features: torch.Tensor | None,
    fold: int = 0, force: bool = False, shard: Shard = SINGLE,
) -> TrainSummary:
    """Train run `key`'s network (of fold `fold`, 0 = no folds) on `split` until `epochs` or
    early stopping; leave the best checkpoint complete. `features` (mode "head") are the
    pretrained penultimate embeddings the head learns from.

    With a `shard` of several processes each trains a DistributedDataParallel replica on its
    share of every epoch (`batch_size` images per process and step) and validates on the whole
    validation set, so all take the same early-stopping and learning-rate decisions; the first
    process writes the checkpoints."""
    train = config.train
    recipe = training_recipe(store, config, split, features)
    checkpoints = Checkpoints(
        best=store.checkpoint_path(key, "best", fold),
        last=store.checkpoint_path(key, "last", fold),
        resume_recipe={**recipe, "train": {
            k: v for k, v in recipe["train"].items() if k not in NOT_IN_RESUME_RECIPE}},
    )
    summary = TrainSummary(train.target, key, mode=train.mode, too_small=split.too_small)
    if not force and store.is_current(checkpoints.best, recipe):
        meta = store.meta(checkpoints.best)
        summary.epochs, summary.best_epoch, summary.up_to_date = (
            meta["epochs"], meta["best_epoch"], True
        )
        return summary

    setup = _setup(store, config, split, features, shard)
    progress = Progress() if force else _resume(setup, checkpoints, key, fold)
    wait_for_all(shard)  # every process has read last.pt before the first one rewrites it
    # best.pt is about to change: it must not look complete until training ends.
    if shard.is_main:
        sidecar_path(checkpoints.best).unlink(missing_ok=True)
    summary.resumed_from = progress.epoch
    log.info(
        "training %s%s on %d images (%d validation, %d classes) on %s; learning: %s",
        key, _fold_name(fold), len(split.rows(TRAIN)), len(split.rows(VAL)), len(setup.classes),
        describe(setup.device),
        ", ".join(name or "whole network" for name in setup.network.trainable),
    )
    while progress.epoch < train.epochs and not progress.stopped:
        _fit_one_epoch(setup, progress, train, checkpoints, key, fold, shard)

    summary.epochs, summary.best_epoch, summary.stopped_early = (
        progress.epoch, progress.best_epoch, progress.stopped
    )
    summary.seconds, summary.device = progress.seconds, describe(setup.device)
    if shard.is_main:
        augmentation = [] if features is not None else list(train.augment)
        _commit_best(store, checkpoints.best, recipe, setup, progress, split, augmentation, shard)
    return summary


def _setup(
    store: Store, config: RunConfig, split: Split, features: torch.Tensor | None, shard: Shard
) -> TrainingSetup:
    """Build the network on its device, the loaders, the optimiser, the learning-rate
    scheduler, the gradient scaler and the loss of one training."""
    train = config.train
    classes = split.classes
    torch.manual_seed(train.seed)  # the new head's initial weights
    network = build_network(config.model, len(classes), train)
    device = pick_device(train.device)
    if features is not None:
        log.info(
            "mode head: training the new head on the pretrained penultimate embeddings; "
            "augmentation does not apply"
        )
        module = network.model.get_submodule(network.head)
    else:
        module = network.model
    prepare_model(module, device)
    index = {label: i for i, label in enumerate(classes)}
    labels = torch.tensor([index.get(value, -1) for value in split.labels])  # -1: unlabelled
    train_loader, val_loader = _loaders(store, network, train, split, features, device, shard)
    replica = _replica(module, device) if shard.sharded else module
    parameters = [p for p in network.model.parameters() if p.requires_grad]
    optimizer = _optimizer(parameters, train)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=train.plateau_factor, patience=train.plateau_patience
    )
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype(device) == torch.float16)
    weights = _class_weights(labels[split.rows(TRAIN)], len(classes)) if train.class_weights \
        else None
    criterion = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    return TrainingSetup(
        network, module, replica, device, classes, labels, train_loader, val_loader, optimizer,
        scheduler, scaler, criterion,
    )


def _resume(setup: TrainingSetup, checkpoints: Checkpoints, key: str, fold: int) -> Progress:
    """Load the weights and optimiser, scheduler and scaler states of a resumable `last.pt`
    into `setup` and return its progress; a fresh start without one."""
    checkpoint = _resumable(checkpoints.last, checkpoints.resume_recipe)
    if checkpoint is None:
        return Progress()
    load_trained_state(setup.network.model, checkpoint["model"], str(checkpoints.last))
    setup.optimizer.load_state_dict(checkpoint["optimizer"])
    setup.scheduler.load_state_dict(checkpoint["scheduler"])
    setup.scaler.load_state_dict(checkpoint["scaler"])
    progress = Progress(**checkpoint["progress"])
    log.info("resuming training of %s%s after epoch %d", key, _fold_name(fold), progress.epoch)
    return progress


def _fit_one_epoch(
    setup: TrainingSetup, progress: Progress, train: TrainConfig, checkpoints: Checkpoints,
    key: str, fold: int, shard: Shard,
) -> None:
    """Train and validate one more epoch, step the scheduler and record the epoch in
    `progress`; the first process then writes the checkpoints and logs the epoch."""
    epoch = progress.epoch + 1
    _seed_epoch(train.seed, epoch)
    if isinstance(setup.train_loader.dataset, ImageFileDataset):
        setup.train_loader.dataset.random_key = (train.seed, epoch)
    if isinstance(setup.train_loader.sampler, DistributedSampler):
        setup.train_loader.sampler.set_epoch(epoch)
    began = time.perf_counter()
    desc = f"train {key}{_fold_name(fold)} epoch {epoch}/{train.epochs}"
    train_loss, val_loss, val_accuracy = _train_and_validate(setup, desc, shard.is_main)
    if not math.isfinite(train_loss) or not math.isfinite(val_loss):
        raise TrainingError(
            f"training {key} diverged in epoch {epoch} (loss {train_loss}, validation loss "
            f"{val_loss}); lower [train] lr (now {train.lr}) and run `precompute train --force`"
        )
    setup.scheduler.step(val_loss)
    lr = setup.optimizer.param_groups[0]["lr"]
    improved = _record_epoch(progress, train.patience, time.perf_counter() - began, {
        "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
        "val_accuracy": val_accuracy, "lr": lr,
    })
    if not shard.is_main:
        return
    _save_checkpoints(setup, progress, checkpoints, improved)
    log.info(
        "epoch %d/%d: train loss %.4f, validation loss %.4f, accuracy %.3f, lr %.2g (%.1f s)",
        epoch, train.epochs, train_loss, val_loss, val_accuracy, lr, time.perf_counter() - began,
    )


def _train_and_validate(
    setup: TrainingSetup, desc: str, show: bool
) -> tuple[float, float, float]:
    """One epoch's training loss, then validation loss and accuracy, under one progress bar
    (shown when `show`)."""
    with tqdm(total=len(setup.train_loader), desc=desc, unit="batch", leave=False,
              disable=not show) as bar:
        train_loss = _train_one_epoch(
            setup.network, setup.replica, setup.train_loader, setup.labels, setup.criterion,
            setup.optimizer, setup.scaler, setup.device, bar,
        )
        val_loss, val_accuracy = _validate(
            setup.module, setup.val_loader, setup.labels, setup.criterion, setup.device
        )
        bar.set_postfix(loss=f"{train_loss:.3f}", val_loss=f"{val_loss:.3f}",
                        val_acc=f"{val_accuracy:.3f}")
    return train_loss, val_loss, val_accuracy


def _record_epoch(
    progress: Progress, patience: int, seconds: float, record: dict[str, float]
) -> bool:
    """Add a finished epoch (`record`, of history) to `progress` and apply early stopping;
    True when its validation loss is the lowest so far."""
    epoch = int(record["epoch"])
    progress.epoch = epoch
    progress.seconds += seconds
    progress.history.append(record)
    if record["val_loss"] < progress.best_loss:
        progress.best_loss, progress.best_epoch, progress.bad_epochs = record["val_loss"], epoch, 0
        return True
    progress.bad_epochs += 1
    progress.stopped = 0 < patience <= progress.bad_epochs
    return False


def _save_checkpoints(
    setup: TrainingSetup, progress: Progress, checkpoints: Checkpoints, improved: bool
) -> None:
    """Write `best.pt` when the epoch just finished is the best so far, and `last.pt` always."""
    network = setup.network
    if improved:
        _save(checkpoints.best, {
            "model": network.trained_state(), "classes": setup.classes,
            "classifier": network.backbone.classifier_name, "epoch": progress.epoch,
        })
    _save(checkpoints.last, {
        "recipe": checkpoints.resume_recipe, "model": network.trained_state(),
        "optimizer": setup.optimizer.state_dict(), "scheduler": setup.scheduler.state_dict(),
        "scaler": setup.scaler.state_dict(), "progress": asdict(progress),
    })


def _commit_best(
    store: Store, path: Path, recipe: dict[str, Any], setup: TrainingSetup, progress: Progress,
    split: Split, augmentation: list[str], shard: Shard,
) -> None:
    """Mark `best.pt` complete: its sidecar keeps the recipe, the training history and how
    the network was trained."""
    store.commit(
        path, recipe,
        checkpoint=file_id(path),
        classes=setup.classes,
        best_epoch=progress.best_epoch,
        best_val_loss=progress.best_loss,
        epochs=progress.epoch,
        stopped_early=progress.stopped,
        history=progress.history,
        seconds=round(progress.seconds, 2),
        images_seen=progress.epoch * len(split.rows(TRAIN)),
        device=describe(setup.device),
        trainable=setup.network.trainable,
        augmentation=augmentation,
        too_small=split.too_small,
        processes=shard.world,
    )


def training_recipe(
    store: Store, config: RunConfig, split: Split, features: torch.Tensor | None
) -> dict[str, Any]:
    """What makes a trained model: the train settings, the backbone, the split, the images (and
    in mode "head" the embeddings it learns from)."""
    images = store.images_meta()
    recipe = {
        "train": {k: v for k, v in asdict(config.train).items() if k not in NOT_IN_RECIPE},
        "model": asdict(config.model),
        "split": split.recipe,
        "images": images["fingerprint"],
        "decode": images["decode"],
    }
    if features is not None:
        pretrained = store.meta(store.embeddings_path(pretrained_space(config.model)))
        recipe["features"] = pretrained["recipe"]
    return recipe


def _fold_name(fold: int) -> str:
    return f" fold {fold}" if fold else ""


def _pretrained_features(store: Store, config: RunConfig, shard: Shard) -> torch.Tensor:
    """The pretrained penultimate embeddings of every image (embedded now if missing)."""
    embed_config = dataclasses.replace(config.embed, layers=[PENULTIMATE])
    embedded = embed_in_every_process(store, embed_config, PretrainedSource(config.model),
                                      False, shard)
    if not embedded.skipped:
        log.info("%s", embedded.line())
    vectors = store.load_embeddings(pretrained_space(config.model))
    return torch.from_numpy(np.asarray(vectors, dtype=np.float32))


def _embed_through_head(
    store: Store, key: str, split: Split, pretrained_key: SpaceKey, features: torch.Tensor,
    dtype: str, force: bool,
) -> None:
    """Mode "head": the backbone is frozen, so the fine-tuned penultimate embedding of an image
    is the new head (all but its last Linear) applied to its pretrained penultimate embedding;
    no pass over the images is needed. With folds each image goes through the head of its own
    fold, which never trained on it. `features` are the embeddings of `pretrained_key`. Written
    with the recipe `run_embed` would give it."""
    source = FinetunedSource(store, key, tuple(fold_numbers(split)))
    path = store.embeddings_path(SpaceKey(key, PENULTIMATE))
    recipe = {**embedding_recipe(store, source, dtype), "layer": PENULTIMATE}
    if not force and store.is_current(path, recipe):
        return
    pretrained = store.meta(store.embeddings_path(pretrained_key)) or {}
    vectors = None
    for fold in fold_numbers(split):
        backbone = FinetunedSource(store, key, (fold,)).load()
        head = backbone.model.get_submodule(backbone.classifier_name.rpartition(".")[0])
        rows = fold_rows(split, fold)
        with torch.inference_mode():
            part = head[:-1](features[torch.from_numpy(rows)]).numpy()
        if vectors is None:
            vectors = np.zeros((len(features), part.shape[1]), dtype=np.float32)
        vectors[rows] = part
    store.write_array(path, storable(vectors, dtype))
    store.commit(
        path, recipe, dim=int(vectors.shape[1]), count=len(vectors), backbone=backbone.name,
        weights=backbone.weights_id, device="cpu", resumed_from=0,
        computed_from=f"{pretrained_key} through the trained head"
        + (f" of each image's own fold ({split.fold_count} folds)" if split.folds is not None
           else ""),
        depth=pretrained.get("depth"), folds=split.fold_count,
    )
    log.info("embed %s: %d images through the trained head (%d-d)", key, len(vectors),
             vectors.shape[1])


def _loaders(
    store: Store, network: FinetunedNetwork, train: TrainConfig, split: Split,
    features: torch.Tensor | None, device: torch.device, shard: Shard,
) -> tuple[DataLoader, DataLoader]:
    """Batches of (input, image row): embeddings in mode "head", decoded images otherwise.
    Each of several processes draws its own share of the training images every epoch."""
    train_rows, val_rows = split.rows(TRAIN), split.rows(VAL)
    if features is not None:
        train_set: Dataset = TensorDataset(features[train_rows], torch.from_numpy(train_rows))
        val_set: Dataset = TensorDataset(features[val_rows], torch.from_numpy(val_rows))
        workers = 0
    else:
        meta = store.images_meta()
        paths = [Path(meta["root"]) / p for p in store.read_images([PATH_COLUMN])[PATH_COLUMN]]
        options = DecodeOptions(**meta["decode"])
        backbone = network.backbone
        size = train.image_size or backbone.input_size
        train_set = ImageFileDataset(
            paths, train_transform(backbone, size, train.augment), options,
            rows=train_rows, draft_size=2 * size,
        )
        val_set = ImageFileDataset(
            paths, backbone.eval_transform(), options,
            rows=val_rows, draft_size=2 * backbone.input_size,
        )
        workers = loader_workers(train.workers, device)
    common = {
        "batch_size": train.batch_size,
        "num_workers": workers,
        "pin_memory": device.type == "cuda",
        "prefetch_factor": 4 if workers else None,
        "worker_init_fn": dies_with_this_process(),
    }
    if shard.sharded:
        share = DistributedSampler(train_set, num_replicas=shard.world, rank=shard.rank,
                                   shuffle=True, seed=train.seed)
        return DataLoader(train_set, sampler=share, **common), DataLoader(val_set, **common)
    return DataLoader(train_set, shuffle=True, **common), DataLoader(val_set, **common)


def _replica(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` as one DistributedDataParallel replica: gradients are averaged over the
    processes in every step."""
    from torch.nn.parallel import DistributedDataParallel

    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=devices)


def _optimizer(parameters: list[nn.Parameter], train: TrainConfig) -> torch.optim.Optimizer:
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=train.lr, momentum=0.9, weight_decay=train.weight_decay
        )
    return torch.optim.AdamW(parameters, lr=train.lr, weight_decay=train.weight_decay)


def _class_weights(train_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse class frequency ("balanced"), so rare classes count as much as common ones."""
    weights = compute_class_weight(
        "balanced", classes=np.arange(num_classes), y=train_labels.numpy()
    )
    return torch.tensor(weights, dtype=torch.float32)


def _seed_epoch(seed: int, epoch: int) -> None:
    """Shuffling and dropout of an epoch draw from the global generator, seeded here from
    (seed, epoch) alone, and augmentation from (seed, epoch, row) (ImageFileDataset), so a
    resumed run repeats exactly what an uninterrupted one would have done, with any number of
    loader processes."""
    torch.manual_seed(seed * 100_003 + epoch)


def _train_one_epoch(
    network: FinetunedNetwork, module: nn.Module, loader: DataLoader, labels: torch.Tensor,
    criterion: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
    device: torch.device, bar: tqdm,
) -> float:
    network.train_mode()
    total, count = 0.0, 0
    for inputs, rows in loader:
        targets = labels[rows].to(device, non_blocking=True)
        with mixed_precision(device):
            loss = criterion(_logits(module(_to_device(inputs, device))).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.item() * len(targets)
        count += len(targets)
        bar.update()
        bar.set_postfix(loss=f"{total / count:.3f}")
    return total / count


def _validate(
    module: nn.Module, loader: DataLoader, labels: torch.Tensor, criterion: nn.Module,
    device: torch.device,
) -> tuple[float, float]:
    """Mean loss and accuracy on the validation images."""
    module.eval()
    total, correct, count = 0.0, 0, 0
    with torch.inference_mode():
        for inputs, rows in loader:
            targets = labels[rows].to(device, non_blocking=True)
            with mixed_precision(device):
                logits = _logits(module(_to_device(inputs, device))).float()
            total += criterion(logits, targets).item() * len(targets)
            correct += int((logits.argmax(dim=1) == targets).sum())
            count += len(targets)
    return total / count, correct / count


def _to_device(inputs: torch.Tensor, device: torch.device) -> torch.Tensor:
    inputs = inputs.to(device, non_blocking=True)
    if device.type == "cuda" and inputs.ndim == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def _logits(outputs: Any) -> torch.Tensor:
    """The main output of networks that also return auxiliary logits while training
    (Inception, GoogLeNet)."""
    return outputs[0] if isinstance(outputs, tuple) else outputs


def _resumable(path: Path, recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The `last.pt` checkpoint when it was made by the same recipe, else None."""
    if not path.exists():
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("recipe") != jsonable(recipe):
        log.info("%s was made with other settings; training starts over", path)
        return None
    return checkpoint


def _save(path: Path, checkpoint: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)
