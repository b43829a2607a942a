"""Stratified train/validation/test split of one target attribute, saved in the store.

Every later number (validation loss, test metrics, the map's correct/incorrect colouring) refers
to the split saved here, so it is made once per target, seed and fractions. Each class is split
on its own, which keeps the class mix of every part close to the whole. scikit-learn's stratified
splitters refuse classes with a single image and test sets smaller than the number of classes,
both common in real product data and in small samples, so the split is drawn per class here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.config import TrainConfig
from precompute.errors import ConfigError, DatasetError
from precompute.store import CATEGORICAL, MISSING, Store, fingerprint

log = logging.getLogger(__name__)

TRAIN, VAL, TEST, UNLABELLED = "train", "val", "test", "unlabelled"
MIN_SPLITTABLE = 3  # one image each for training, validation and test


@dataclass
class Split:
    """The split of one target: its label and part (train/val/test/unlabelled) per image."""

    target: str
    labels: np.ndarray  # the target value of every image, in image order
    parts: np.ndarray  # TRAIN, VAL, TEST or UNLABELLED per image
    too_small: list[str]  # classes with fewer than MIN_SPLITTABLE images: training only
    recipe: dict

    @property
    def classes(self) -> list[str]:
        """Every labelled class, sorted: the outputs of the classifier."""
        return sorted(set(self.labels[self.parts != UNLABELLED]))

    def rows(self, part: str) -> np.ndarray:
        """Image rows of one part, in image order."""
        return np.flatnonzero(self.parts == part)


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, list[str]]:
    """Assign every image to train, val or test, class by class; rows labelled MISSING are
    UNLABELLED. Returns the parts and the classes too small to split (kept in train)."""
    rng = np.random.default_rng(seed)
    parts = np.full(len(labels), TRAIN, dtype=object)
    parts[labels == MISSING] = UNLABELLED
    too_small = []
    for label in sorted(set(labels) - {MISSING}):
        rows = np.flatnonzero(labels == label)
        if len(rows) < MIN_SPLITTABLE:
            too_small.append(str(label))
            continue
        rows = rng.permutation(rows)
        n_test = min(max(1, round(test_fraction * len(rows))), len(rows) - 2)
        n_val = min(max(1, round(val_fraction * len(rows))), len(rows) - 1 - n_test)
        parts[rows[:n_test]] = TEST
        parts[rows[n_test:n_test + n_val]] = VAL
    return parts, too_small


def ensure_split(store: Store, config: TrainConfig, force: bool = False) -> Split:
    """The store's split for `config.target`, made and saved when missing or out of date."""
    labels = target_labels(store, config.target)
    recipe = {
        "target": config.target,
        "val_fraction": config.val_fraction,
        "test_fraction": config.test_fraction,
        "seed": config.seed,
        "images": store.images_meta()["fingerprint"],
        "labels": fingerprint(labels),  # an edited manifest re-splits
    }
    path = store.split_path(config.target)
    if not force and store.is_current(path, recipe):
        meta = store.meta(path)
        parts = pd.read_parquet(path)["split"].to_numpy(dtype=object)
        return Split(config.target, labels, parts, meta["too_small"], recipe)

    parts, too_small = stratified_split(
        labels, config.val_fraction, config.test_fraction, config.seed
    )
    split = Split(config.target, labels, parts, too_small, recipe)
    counts = {part: int((parts == part).sum()) for part in (TRAIN, VAL, TEST, UNLABELLED)}
    if len(split.classes) < 2:
        raise DatasetError(
            f"[train] target {config.target!r} has {len(split.classes)} labelled class(es); "
            "a classifier needs at least two"
        )
    if not counts[VAL] or not counts[TEST]:
        raise DatasetError(
            f"[train] target {config.target!r}: no class has the {MIN_SPLITTABLE} images needed "
            "for a training, a validation and a test image; choose a target with larger classes"
        )
    if too_small:
        log.warning(
            "%d class(es) of %s have fewer than %d images and are used for training only: %s",
            len(too_small), config.target, MIN_SPLITTABLE, ", ".join(too_small),
        )
    store.write_table(path, pd.DataFrame({"split": pd.array(parts, dtype="string")}))
    store.commit(
        path, recipe, counts=counts, classes=len(split.classes), too_small=too_small
    )
    return split


def target_labels(store: Store, target: str) -> np.ndarray:
    """The target attribute of every image as strings; refuses attributes that are not
    categorical."""
    check_target(store.images_meta()["attributes"], target)
    return store.read_images([target])[target].to_numpy(dtype=object)


def check_target(kinds: dict[str, str], target: str) -> None:
    """Refuse a target that is not a categorical attribute, naming the ones there are."""
    if target not in kinds:
        raise ConfigError(
            f"[train] target {target!r} is not an attribute of this dataset; "
            f"attributes: {', '.join(kinds)}"
        )
    if kinds[target] != CATEGORICAL:
        raise ConfigError(
            f"[train] target {target!r} is {kinds[target]}, not categorical; to learn it as "
            f"classes add it to [dataset] categorical and run `precompute ingest` again"
        )
