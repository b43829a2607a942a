"""Stratified train/validation/test split of one target attribute, or its k stratified folds,
saved in the store.

Every later number (validation loss, test metrics, the map's correct/incorrect colouring) refers
to the split saved here, so it is made once per target, seed and fractions. Each class is split
on its own, which keeps the class mix of every part close to the whole. scikit-learn's stratified
splitters refuse classes with a single image and test sets smaller than the number of classes,
both common in real product data and in small samples, so the split is drawn per class here.

With k folds every image belongs to one fold; the model of fold f trains on the others (less a
validation share for early stopping, drawn per class) and predicts and embeds fold f, so every
labelled image is predicted exactly once by a model that never saw it. Unlabelled images are
spread over the folds too, so each is embedded by one fold's model.

Near-duplicates (the quality stage's groups) are kept in one part or fold by default
(`[train] near_duplicates = "together"`): a copy of a test image in training would flatter
every score. (A fold's validation share, drawn from its training folds for early stopping, is
drawn image by image.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.config import TrainConfig
from precompute.errors import ConfigError, DatasetError
from precompute.store import CATEGORICAL, ID_COLUMN, MISSING, Store, fingerprint

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
    folds: np.ndarray | None = None  # with k folds: the fold (1 … k) of every image
    # the near-duplicate group of every image (-1: none); None before the quality stage ran
    groups: np.ndarray | None = None

    @property
    def fold_count(self) -> int:
        """k, or 1 for a single train/validation/test split."""
        return 1 if self.folds is None else int(self.folds.max())

    def fold(self, number: int, val_fraction: float, seed: int) -> Split:
        """The split fold `number`'s model trains with: that fold is its test part, and a
        `val_fraction` share of each class of the other folds its validation part."""
        held_out = self.folds == number
        parts = np.where(self.parts == UNLABELLED, UNLABELLED, TRAIN).astype(object)
        parts[held_out & (parts == TRAIN)] = TEST
        rng = np.random.default_rng([seed, number])
        for label in self.classes:
            rows = rng.permutation(np.flatnonzero((self.labels == label) & (parts == TRAIN)))
            if len(rows) >= 2:
                parts[rows[:max(1, round(val_fraction * len(rows)))]] = VAL
        if not (parts == VAL).any() or not (parts == TEST).any():
            raise DatasetError(
                f"[train] target {self.target!r}: fold {number} of {self.fold_count} has no "
                f"{'validation' if (parts == TEST).any() else 'test'} image; use fewer folds "
                "or a target with larger classes")
        return Split(self.target, self.labels, parts, self.too_small,
                     {**self.recipe, "fold": number}, groups=self.groups)

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


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (1 … `folds`) of every image: each class (and the unlabelled images) dealt
    round the folds in a seeded order, continuing where the previous class stopped, so every
    fold gets a near-equal share of every class and of the whole."""
    rng = np.random.default_rng(seed)
    assigned = np.zeros(len(labels), dtype=np.int64)
    dealt = 0
    for label in sorted(set(labels)):
        rows = rng.permutation(np.flatnonzero(labels == label))
        assigned[rows] = (dealt + np.arange(len(rows))) % folds + 1
        dealt += len(rows)
    return assigned


def ensure_split(store: Store, config: TrainConfig, force: bool = False,
                 groups: np.ndarray | None = None) -> Split:
    """The store's split for `config.target` (its folds when `config.folds` > 1), made and
    saved when missing or out of date. With folds every labelled image is a test image once.
    `groups` (a near-duplicate group per image, -1 for none; default: the quality stage's)
    are kept in one part unless `near_duplicates = "anywhere"`."""
    labels = target_labels(store, config.target)
    known = near_duplicate_groups(store) if groups is None else groups
    # none known before the quality stage has run: no group to keep
    groups = np.full(len(labels), -1, dtype=np.int64) if known is None else known
    together = config.near_duplicates == "together"
    recipe = {
        "target": config.target,
        "val_fraction": config.val_fraction,
        "test_fraction": config.test_fraction,
        "folds": config.folds,
        "seed": config.seed,
        "images": store.images_meta()["fingerprint"],
        "labels": fingerprint(labels),  # an edited manifest re-splits
        "near_duplicates": fingerprint(groups.astype(str)) if together else "anywhere",
    }
    path = store.split_path(config.target)
    if not force and store.is_current(path, recipe):
        meta = store.meta(path)
        table = pd.read_parquet(path)
        folds = table["fold"].to_numpy() if "fold" in table else None
        return Split(config.target, labels, table["split"].to_numpy(dtype=object),
                     meta["too_small"], recipe, folds, known)

    if config.folds > 1:
        parts = np.where(labels == MISSING, UNLABELLED, TEST).astype(object)
        too_small: list[str] = []
        folds = stratified_folds(labels, config.folds, config.seed)
        split = Split(config.target, labels, parts, too_small, recipe,
                      with_groups_together(folds, groups) if together else folds, known)
        _check_classes(split)
        table = {"split": pd.array(parts, dtype="string"), "fold": split.folds}
        _save(store, path, split, table)
        return split

    parts, too_small = stratified_split(
        labels, config.val_fraction, config.test_fraction, config.seed
    )
    if together:
        grouped = with_groups_together(parts, np.where(parts == UNLABELLED, -1, groups))
        if (grouped == VAL).any() and (grouped == TEST).any():
            parts = grouped
        else:
            log.warning("[train] target %r: keeping near-duplicates together would leave no "
                        "validation or test image, so they are split one by one",
                        config.target)
    split = Split(config.target, labels, parts, too_small, recipe, groups=known)
    _check_classes(split)
    counts = _counts(split)
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
    _save(store, path, split, {"split": pd.array(parts, dtype="string")})
    return split


def near_duplicate_groups(store: Store) -> np.ndarray | None:
    """The near-duplicate group of every image (the quality stage's), -1 for images in none;
    None when the stage has not run (nothing is known)."""
    path = store.quality_path()
    if store.meta(path) is None:
        return None
    ids = store.read_images([ID_COLUMN])[ID_COLUMN]
    issues = pd.read_parquet(path, columns=[ID_COLUMN, "kind", "group"])
    return groups_by_row(issues[issues["kind"] == "near_duplicate"], ids)


def groups_by_row(duplicates: pd.DataFrame, ids: pd.Series | np.ndarray) -> np.ndarray:
    """The group of each image of `ids` in a near-duplicate table (`sample_id`, `group`), -1
    for images in none."""
    groups = np.full(len(ids), -1, dtype=np.int64)
    rows = pd.Index(ids).get_indexer(duplicates[ID_COLUMN])
    groups[rows[rows >= 0]] = duplicates["group"].to_numpy(dtype=np.int64)[rows >= 0]
    return groups


def with_groups_together(assigned: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """`assigned` (a part or a fold per image) with every member of a group (>= 0) moved to
    one place: the training part if any member is there (so no class loses a training image),
    else where the group's first member is."""
    assigned = assigned.copy()
    members = np.flatnonzero(groups >= 0)
    if not len(members):
        return assigned
    frame = pd.DataFrame({"group": groups[members], "where": assigned[members]})
    anchor = frame.groupby("group")["where"].first()
    if assigned.dtype == object:  # parts: a group with a training member trains
        anchor[frame.loc[frame["where"] == TRAIN, "group"].unique()] = TRAIN
    assigned[members] = anchor.loc[frame["group"]].to_numpy()
    return assigned


def seen_in_training(split: Split) -> np.ndarray:
    """Test images with a near-duplicate (by `split.groups`, which must be known) among the
    labelled images their model learned from: the train part, or with folds the other
    folds."""
    test, groups = split.parts == TEST, split.groups
    labelled = (groups >= 0) & (split.parts != UNLABELLED)
    if split.folds is None:
        trained = np.unique(groups[labelled & (split.parts == TRAIN)])
        return test & np.isin(groups, trained)
    folds = pd.Series(split.folds[labelled]).groupby(groups[labelled]).nunique()
    return test & np.isin(groups, folds.index[folds > 1].to_numpy())


def _check_classes(split: Split) -> None:
    if len(split.classes) < 2:
        raise DatasetError(
            f"[train] target {split.target!r} has {len(split.classes)} labelled class(es); "
            "a classifier needs at least two"
        )


def _counts(split: Split) -> dict[str, int]:
    return {part: int((split.parts == part).sum()) for part in (TRAIN, VAL, TEST, UNLABELLED)}


def _save(store: Store, path: Path, split: Split, columns: dict) -> None:
    """The split table (by sample_id, in image order) and its sidecar."""
    ids = store.read_images([ID_COLUMN])[ID_COLUMN]
    store.write_table(path, pd.DataFrame({ID_COLUMN: ids, **columns}))
    store.commit(path, split.recipe, counts=_counts(split), classes=len(split.classes),
                 too_small=split.too_small, folds=split.fold_count)


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
