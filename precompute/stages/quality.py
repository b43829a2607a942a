"""Quality stage: check the dataset through one feature space (by default the pretrained
network's penultimate layer) for near-duplicates, duplicates across the training split, likely
label mistakes and outliers, and write every flagged image to `quality/issues.parquet`.

The neighbour search (through the space's FAISS index, built here once and reused by the index
stage) and each attribute's label check are kept as finished parts, so an interrupted run
resumes after the last one; the checks themselves are in precompute/stats/quality_checks.py.
Near-duplicate candidates are confirmed by their pixels (precompute/stats/pixels.py), which
reads the images of the candidate pairs again from the dataset folder; those verdicts are kept
as a finished part too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.config import RunConfig
from precompute.errors import ConfigError
from precompute.images import DecodeOptions, ImageRejected, open_rgb
from precompute.stats.pixels import DRAFT, same_picture, signature
from precompute.stats.pixels import SETTINGS as PIXEL_SETTINGS
from precompute.stats.quality_checks import (
    conflicting_duplicates,
    issue_table,
    label_issues,
    near_duplicates,
    neighbour_probabilities,
    out_of_fold_probabilities,
    outliers,
    similar_pairs,
    split_leaks,
)
from precompute.stats.vectors import NORMALISE_CHUNK, normalised_chunks
from precompute.store import (
    CATEGORICAL,
    ID_COLUMN,
    MISSING,
    PATH_COLUMN,
    PENULTIMATE,
    PRETRAINED,
    QUALITY_KINDS,
    SpaceKey,
    Store,
    atomic_path,
    fingerprint,
    model_name,
)

log = logging.getLogger(__name__)


@dataclass
class QualitySummary:
    counts: dict[str, int] = field(default_factory=dict)
    space: str = ""
    seconds: float = 0.0
    skipped: bool = False

    def line(self) -> str:
        found = ", ".join(f"{n} {kind}" for kind, n in self.counts.items())
        if self.skipped:
            return f"quality: up to date ({found})"
        return f"quality: {found} in {self.space} ({self.seconds:.0f} s)"


def quality_space(store: Store, config: RunConfig) -> SpaceKey:
    """The space the checks run in: as configured, else the first backbone's pretrained
    penultimate layer."""
    space = config.quality.space
    first = config.model.each_backbone()[0].backbone
    key = SpaceKey.parse(space) if space else SpaceKey(model_name(first, PRETRAINED), PENULTIMATE)
    if key not in store.spaces():
        raise ConfigError(f"[quality] space = {str(key)!r} is not in the store; spaces: "
                          f"{', '.join(map(str, store.spaces())) or '(none: run embed first)'}")
    return key


def checked_attributes(config: RunConfig, kinds: dict[str, str]) -> list[str]:
    """Attributes whose labels are checked: as configured (and the training target), else
    every categorical attribute."""
    chosen = list(config.quality.attributes) or [a for a, k in kinds.items() if k == CATEGORICAL]
    if config.train.target and config.train.target not in chosen:
        chosen.append(config.train.target)
    wrong = [a for a in chosen if kinds.get(a) != CATEGORICAL]
    if wrong:
        raise ConfigError(f"[quality] attributes: {', '.join(wrong)} are not categorical "
                          "attributes of the store")
    return chosen


def run_quality(store: Store, config: RunConfig, force: bool = False) -> QualitySummary:
    """Run the checks unless `quality/issues.parquet` is up to date."""
    from precompute.stages.index import run_index
    from precompute.stats.split import ensure_split, groups_by_row

    quality = config.quality
    space = quality_space(store, config)
    images = store.images_meta()
    attributes = checked_attributes(config, images["attributes"])
    table = store.read_images([ID_COLUMN, *attributes])
    target = config.train.target
    recipe = {"embeddings": store.meta(store.embeddings_path(space))["recipe"],
              "quality": asdict(quality), "attributes": attributes,
              "labels": {a: fingerprint(table[a].astype(str)) for a in attributes},
              "split": {"target": target, "val_fraction": config.train.val_fraction,
                        "test_fraction": config.train.test_fraction, "seed": config.train.seed,
                        "folds": config.train.folds,
                        "near_duplicates": config.train.near_duplicates}
              if target else None}
    path = store.quality_path()
    if not force and store.is_current(path, recipe):
        return QualitySummary(store.meta(path)["counts"], str(space), skipped=True)

    began = time.perf_counter()
    run_index(store, config.index, spaces=[space])  # the index stage will find it up to date
    ids = table[ID_COLUMN].to_numpy()
    neighbours, similarities = _neighbours(store, space, quality.neighbours, recipe, force)
    pairs = similar_pairs(neighbours, similarities, quality.duplicate_similarity)
    duplicates = near_duplicates(ids, *(_confirmed(store, pairs, recipe, force)
                                        if quality.duplicate_pixels else pairs))
    found = [duplicates]
    if target:
        split = ensure_split(store, config.train, groups=groups_by_row(duplicates, ids))
        if split.folds is None:
            found.append(split_leaks(duplicates, ids, split.parts, target))
        else:  # a fold's images leak when a duplicate sits in a fold its model trains on
            found += [split_leaks(duplicates, ids,
                                  np.where(split.folds == fold, "test", "train"), target)
                      for fold in range(1, split.fold_count + 1)]
    found.append(conflicting_duplicates(
        duplicates, {a: table.set_index(ID_COLUMN)[a].astype(str) for a in attributes}))
    for attribute in attributes:
        found.append(_label_check(store, space, table, attribute, neighbours, recipe, force))
    found.append(outliers(ids, similarities, quality.outlier_share))
    issues = pd.concat([f for f in found if len(f)] or found[:1], ignore_index=True)
    counts = {kind: int((issues["kind"] == kind).sum()) for kind in QUALITY_KINDS}
    store.write_table(path, issues)
    store.commit(path, recipe, space=str(space), counts=counts,
                 seconds=round(time.perf_counter() - began, 2))
    return QualitySummary(counts, str(space), time.perf_counter() - began)


def _neighbours(store: Store, space: SpaceKey, k: int, recipe: dict, force: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each image's `k` nearest other images (rows, cosine similarities), searched once."""
    import faiss

    path = store.quality_part_path("neighbours.npz")
    part_recipe = {"embeddings": recipe["embeddings"], "k": k}
    if not force and store.is_current(path, part_recipe):
        with np.load(path) as saved:
            return saved["rows"], saved["similarities"]
    index = faiss.read_index(str(store.index_path(space)))
    embeddings = store.load_embeddings(space)
    rows = np.empty((len(embeddings), k), dtype=np.int64)
    similarities = np.empty((len(embeddings), k), dtype=np.float32)
    for start, chunk in normalised_chunks(embeddings):
        found_scores, found_rows = index.search(chunk, k + 1)
        own = np.arange(start, start + len(chunk))[:, None]
        # drop each image itself (wherever an identical twin put it), else the farthest
        drop = np.where((found_rows == own).any(axis=1), (found_rows == own).argmax(axis=1), k)
        keep = np.arange(k + 1)[None, :] != drop[:, None]
        rows[start:start + len(chunk)] = found_rows[keep].reshape(len(chunk), k)
        similarities[start:start + len(chunk)] = found_scores[keep].reshape(len(chunk), k)
    _keep_arrays(store, path, part_recipe, {"rows": rows, "similarities": similarities},
                 chunk=NORMALISE_CHUNK)
    return rows, similarities


def _keep_arrays(store: Store, path: Path, recipe: dict, arrays: dict[str, np.ndarray],
                 **info: object) -> None:
    """Write a finished part of arrays (`.npz`) and its sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    store.commit(path, recipe, **info)


def _confirmed(store: Store, pairs: tuple[np.ndarray, np.ndarray, np.ndarray], recipe: dict,
               force: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`same_pixels` of the candidate pairs, its verdicts kept as a finished part: a run after an
    interruption, or with other label settings, does not read the pairs' images again."""
    path = store.quality_part_path("same-pixels.npz")
    first, second, scores = pairs
    part_recipe = {"embeddings": recipe["embeddings"], "images": store.images_meta()["recipe"],
                   "pairs": fingerprint([f"{a}:{b}" for a, b in zip(first, second, strict=True)]),
                   "pixels": PIXEL_SETTINGS}
    if not force and store.is_current(path, part_recipe):
        with np.load(path) as saved:
            same = saved["same"]
    else:
        same, unread = pixel_verdicts(store, first, second)
        if not unread:  # a verdict by similarity alone is not kept: the image may come back
            _keep_arrays(store, path, part_recipe, {"same": same}, kept=int(same.sum()),
                         pairs=len(same))
    log.info("quality: %d of %d similar pairs kept as near-duplicates", same.sum(), len(same))
    return first[same], second[same], scores[same]


def same_pixels(store: Store, pairs: tuple[np.ndarray, np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs whose images show the same picture in their pixels (precompute/stats/pixels.py):
    copies of one picture, not two pictures the network sees as alike."""
    first, second, scores = pairs
    same, _ = pixel_verdicts(store, first, second)
    return first[same], second[same], scores[same]


def pixel_verdicts(store: Store, first: np.ndarray, second: np.ndarray
                   ) -> tuple[np.ndarray, int]:
    """Whether the images of rows `first[i]` and `second[i]` show the same picture, and how
    many images could not be read; a pair with such an image counts as one (its similarity
    decides)."""
    if not len(first):
        return np.zeros(0, dtype=bool), 0
    meta = store.images_meta()
    rows = np.unique(np.concatenate([first, second]))
    paths = store.read_images([PATH_COLUMN])[PATH_COLUMN].to_numpy()[rows]
    options = DecodeOptions(**meta["decode"])
    signatures = {}
    for row, path in zip(rows, paths, strict=True):
        try:
            signatures[row] = signature(open_rgb(Path(meta["root"]) / path, options,
                                                 draft_size=DRAFT))
        except ImageRejected:  # moved or changed since ingestion: the similarity decides
            signatures[row] = None
    unread = sum(s is None for s in signatures.values())
    if unread:
        log.warning("quality: %d of %d images of similar pairs could not be read from %s; "
                    "their pairs count as near-duplicates by similarity alone",
                    unread, len(rows), meta["root"])
    return np.array([signatures[a] is None or signatures[b] is None
                     or same_picture(signatures[a], signatures[b])
                     for a, b in zip(first, second, strict=True)], dtype=bool), unread


def _label_check(store: Store, space: SpaceKey, table: pd.DataFrame, attribute: str,
                 neighbours: np.ndarray, recipe: dict, force: bool) -> pd.DataFrame:
    """Likely label mistakes of one attribute, among images whose class is large enough to be
    cross-validated (and not missing)."""
    config = recipe["quality"]
    path = store.quality_part_path(f"labels-{attribute}.parquet")
    part_recipe = {"embeddings": recipe["embeddings"], "quality": config,
                   "labels": recipe["labels"][attribute]}
    if not force and store.is_current(path, part_recipe):
        return pd.read_parquet(path)
    labels = table[attribute].astype(str).to_numpy()
    sizes = pd.Series(labels).value_counts()
    large = set(sizes.index[sizes >= config["folds"]]) - {MISSING}
    rows = np.flatnonzero(np.isin(labels, list(large)))
    if len(large) < 2:
        log.info("quality: %s has fewer than two classes of %d images; labels not checked",
                 attribute, config["folds"])
        found = issue_table([])
    else:
        classes = sorted(large)  # out_of_fold_probabilities orders its columns the same way
        estimates = []
        if config["labels_from"] in ("out_of_fold", "both"):
            vectors = np.asarray(store.load_embeddings(space)[rows], dtype=np.float32)
            estimates.append(out_of_fold_probabilities(
                vectors, labels[rows], config["folds"], config["seed"])[0])
        if config["labels_from"] in ("neighbours", "both"):
            estimates.append(neighbour_probabilities(neighbours[rows], labels, classes))
        probabilities = np.mean(estimates, axis=0)
        found = label_issues(table[ID_COLUMN].to_numpy()[rows], labels[rows], probabilities,
                             classes, attribute)
    store.write_table(path, found)
    store.commit(path, part_recipe, flagged=len(found))
    return found
