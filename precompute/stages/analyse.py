"""Analyse stage: the separability matrix, every categorical attribute × every feature space.

Scores are computed in the full-dimensional space (never on a 2D map): kNN accuracy through the
space's FAISS index, a cross-validated linear probe and the silhouette, each with a shuffled-label
baseline and a bootstrap interval (see separability.py), unconditionally and for B within each
value of A. Each space's rows are written as one artifact, so a new space (a fine-tuned model's)
is analysed without redoing the others; the table the app reads is rebuilt from those parts.

A fine-tuned space is scored only on images its model never trained on: the test part of its
split, or with folds every image (each embedded by the model of the fold that held it out).
`[analysis] training_images = true` scores every image anyway, with a warning; `split` picks
one part of a split for every space.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial

import faiss
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from precompute.config import AnalysisConfig
from precompute.errors import ConfigError, StoreError
from precompute.processes import dies_with_this_process
from precompute.stats import probe
from precompute.stats.separability import (
    METRICS,
    Grouping,
    Score,
    assess,
    cosine_distances,
    each_version,
    knn_correct,
    make_grouping,
    neighbours_within_strata,
    silhouettes,
)
from precompute.stats.split import TEST
from precompute.stats.vectors import normalised
from precompute.store import CATEGORICAL, MISSING, SpaceKey, Store

log = logging.getLogger(__name__)

COLUMNS = [
    "space", "attribute", "given", "metric", "value", "low", "high",
    "baseline", "baseline_low", "baseline_high", "n", "classes", "strata",
]
INTERVAL = "95% bootstrap percentile interval of the mean over images ({} resamples)"
BASELINE = (
    "mean score over label shuffles ({} for knn and silhouette; {} for probe, permuted within "
    "its folds), within strata when conditional; baseline_low/high: 2.5 and 97.5 percentiles "
    "of the shuffled scores"
)


@dataclass
class AnalyseSummary:
    made: list[str] = field(default_factory=list)
    up_to_date: int = 0
    cells: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        if not self.made:
            return f"analyse: up to date ({self.up_to_date} spaces, {self.cells} scores)"
        return (
            f"analyse: {len(self.made)} spaces analysed in {self.seconds:.0f} s, "
            f"{self.up_to_date} up to date; {self.cells} scores in the separability table"
        )


def run_analyse(
    store: Store, config: AnalysisConfig, spaces: list[SpaceKey] | None = None,
    force: bool = False,
) -> AnalyseSummary:
    """Score every analysed attribute (and conditional pair) in each space not up to date, then
    rebuild the separability table from every space's scores."""
    images = store.images_meta()
    attributes = analysed_attributes(config, images["attributes"])
    table = store.read_images(attributes)
    pairs = conditional_pairs(config, table, attributes)
    plans: dict[str, tuple[np.ndarray, dict]] = {}  # scored images → (sample, groupings)

    summary = AnalyseSummary()
    began = time.perf_counter()
    for space in spaces or store.spaces():
        path = store.separability_part_path(space)
        recipe = part_recipe(store, space, images["recipe"], config)
        if not force and store.is_current(path, recipe):
            summary.up_to_date += 1
            continue
        rows, scored = scored_rows(store, space, config, len(table))
        if scored not in plans:
            sample = analysed_rows(rows, config.sample, config.seed)
            plans[scored] = sample, plan_groupings(table, attributes, pairs, sample,
                                                   config.min_class_size)
        sample, groupings = plans[scored]
        part_began = time.perf_counter()
        scores = score_space(store, space, groupings, sample, config)
        store.write_table(path, pd.DataFrame(scores, columns=COLUMNS))
        store.commit(path, recipe, seconds=round(time.perf_counter() - part_began, 1),
                     scored=scored, scored_images=int(len(sample)))
        summary.made.append(str(space))
    summary.seconds = time.perf_counter() - began
    summary.cells = write_matrix(store, images["recipe"], config, attributes, pairs, force)
    return summary


def analysed_attributes(config: AnalysisConfig, kinds: dict[str, str]) -> list[str]:
    """`config.attributes`, checked, or every categorical attribute."""
    categorical = [name for name, kind in kinds.items() if kind == CATEGORICAL]
    if not config.attributes:
        return categorical
    wrong = [name for name in config.attributes if name not in categorical]
    if wrong:
        raise ConfigError(
            f"[analysis] attributes: {', '.join(wrong)} not categorical attributes of the store; "
            f"choose from {', '.join(categorical) or '(none)'}"
        )
    return list(config.attributes)


def conditional_pairs(
    config: AnalysisConfig, table: pd.DataFrame, attributes: list[str]
) -> list[tuple[str, str]]:
    """(B, A) pairs scored as "B within each value of A": as configured, or every ordered pair
    of analysed attributes where B is not a function of A (else there is nothing to score)."""
    if config.conditional is None:
        return [
            (b, a) for b in attributes for a in attributes
            if b != a and not is_function_of(table[b], table[a])
        ]
    pairs = []
    for pair in config.conditional:
        if len(pair) != 2 or any(name not in attributes for name in pair) or pair[0] == pair[1]:
            raise ConfigError(
                f"[analysis] conditional: {pair!r} must be [attribute, given], two different "
                f"analysed attributes ({', '.join(attributes)})"
            )
        pairs.append((pair[0], pair[1]))
    return pairs


def is_function_of(b: pd.Series, a: pd.Series) -> bool:
    """Whether every value of `a` comes with a single value of `b` (missing values ignored)."""
    known = known_values(b) & known_values(a)
    return bool((b[known].groupby(a[known], observed=True).nunique() <= 1).all())


def known_values(column: pd.Series) -> pd.Series:
    """True where an attribute has a value (not missing)."""
    return column.notna() & (column.astype("string") != MISSING)


def split_rows(store: Store, split: str, count: int) -> np.ndarray:
    """The rows in part `split` ("target/part") of a fine-tuning split, or every row for ""."""
    if not split:
        return np.arange(count)
    target, _, part = split.partition("/")
    path = store.split_path(target)
    if not part or store.meta(path) is None:
        raise ConfigError(
            f"[analysis] split = {split!r}: " + (
                "expected target/part, e.g. style/test" if not part else
                f"the store has no split of {target} ({path}); run the train stage for that "
                "target first, or set split = \"\" to score every image"
            )
        )
    parts = pd.read_parquet(path, columns=["split"])["split"]
    rows = np.flatnonzero((parts == part).to_numpy())
    if not len(rows):
        raise ConfigError(
            f"[analysis] split = {split!r}: no image is in part {part!r}; the parts are "
            f"{', '.join(sorted(parts.unique()))}"
        )
    return rows


def scored_rows(
    store: Store, space: SpaceKey, config: AnalysisConfig, count: int
) -> tuple[np.ndarray, str]:
    """The images a space is scored on, and a sentence that says which: every image for a
    pretrained space, only the images its model never trained on for a fine-tuned one."""
    if config.split:
        target, _, part = config.split.partition("/")
        return split_rows(store, config.split, count), f"the {part} images of the {target} split"
    trained = store.meta(store.embeddings_path(space))["recipe"].get("train")
    if trained is None:
        return np.arange(count), "every image (a pretrained space: none was trained on)"
    folds = trained["split"].get("folds", 1)
    if folds > 1:
        return np.arange(count), (f"every image, each embedded by the model of the one of "
                                  f"{folds} folds that never trained on it")
    target = trained["split"]["target"]
    if config.training_images:
        log.warning("analyse %s: scored on every image, including the ones its model trained "
                    "on ([analysis] training_images = true): its scores are optimistic", space)
        return np.arange(count), "every image, including the ones its model trained on"
    # The run's own record of its split (the shared split file may have been remade since).
    parts = pd.read_parquet(store.predictions_path(space.model), columns=["split"])["split"]
    return np.flatnonzero((parts == TEST).to_numpy()), (
        f"the test images of the {target} split, which its model never trained on")


def analysed_rows(rows: np.ndarray, sample: int, seed: int) -> np.ndarray:
    """`rows`, or a seeded random `sample` of them (ascending) when there are more; the same
    rows in every space scored on the same images (`scored_rows`), so those spaces are
    compared on the same sample."""
    if len(rows) <= sample:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=sample, replace=False))


def plan_groupings(
    table: pd.DataFrame, attributes: list[str], pairs: list[tuple[str, str]],
    sample: np.ndarray, min_class_size: int,
) -> dict[tuple[str, str], Grouping]:
    """The scorable rows of each attribute ("" = unconditional) and of each conditional pair."""
    in_sample = np.zeros(len(table), dtype=bool)
    in_sample[sample] = True
    plans = [(attribute, "") for attribute in attributes] + pairs
    groupings = {}
    for attribute, given in plans:
        usable = in_sample & known_values(table[attribute]).to_numpy()
        strata = None
        if given:
            usable &= known_values(table[given]).to_numpy()
            strata = table[given].astype("string").to_numpy()
        grouping = make_grouping(
            table[attribute].astype("string").to_numpy(), strata, usable, min_class_size
        )
        if grouping is None:
            log.info(
                "%s%s: no %s with two classes of at least %d images; not scored", attribute,
                f" given {given}" if given else "", "stratum" if given else "set", min_class_size,
            )
            continue
        groupings[(attribute, given)] = grouping
    return groupings


def part_recipe(
    store: Store, space: SpaceKey, images_recipe: dict, config: AnalysisConfig
) -> dict:
    """What one space's scores depend on: its embeddings and index, the attributes, settings
    and the split that says which images it is scored on."""
    index = store.meta(store.index_path(space))
    trained = store.meta(store.embeddings_path(space))["recipe"].get("train")
    target = config.split.partition("/")[0]
    split = store.meta(store.split_path(target)) if target else None
    if trained and not target:  # scored on its run's test images: their predictions say which
        split = store.meta(store.predictions_path(space.model))
    return {
        "embeddings": store.meta(store.embeddings_path(space))["recipe"],
        "index": index["recipe"] if index else None,
        "images": images_recipe,
        "split": split["recipe"] if split else None,
        "analysis": asdict(config),
        "probe": probe.RECIPE,
    }


def score_space(
    store: Store, space: SpaceKey, groupings: dict[tuple[str, str], Grouping],
    sample: np.ndarray, config: AnalysisConfig,
) -> list[dict]:
    """Every score of one space: one record per (attribute, given, metric)."""
    index = load_index(store, space)
    vectors = normalised(np.asarray(store.load_embeddings(space)[sample]))
    distances = cosine_distances(vectors)
    positions = {key: np.searchsorted(sample, grouping.rows) for key, grouping in
                 groupings.items()}
    records = []
    with probe_pool(vectors, len(groupings)) as pool, tqdm(
        total=len(groupings) * len(METRICS), desc=f"analyse {space}", unit="score",
    ) as bar:
        # the probes, nearly all of the stage's time, run in worker processes while this one
        # scores kNN and silhouettes
        probes = {key: pool.submit(probe_score, positions[key], grouping, config)
                  for key, grouping in groupings.items()}
        for (attribute, given), grouping in groupings.items():
            at = positions[attribute, given]
            neighbours = neighbours_within_strata(index, vectors[at], grouping, config.knn)
            among = distances[np.ix_(at, at)]
            for metric in METRICS:
                if metric == "probe":
                    score = probes[attribute, given].result()
                else:
                    scorer = (each_version(partial(knn_correct, neighbours)) if metric == "knn"
                              else partial(silhouettes, among, grouping=grouping))
                    score = assess(scorer, grouping, config.shuffles, config.bootstrap,
                                   np.random.default_rng(config.seed))
                records.append({
                    "space": str(space), "attribute": attribute, "given": given,
                    "metric": metric, **score.record(),
                })
                bar.update()
    return records


# ---------------------------------------------------------------------------- probe workers
_probe_vectors: np.ndarray | None = None  # the analysed rows' vectors, in a probe worker


@contextmanager
def probe_pool(vectors: np.ndarray, probes: int) -> Iterator[ProcessPoolExecutor]:
    """Worker processes for the probes (one per core, at most one per probe), each given
    `vectors` once as it starts (inherited, not copied, where processes fork) and dying with
    this process. An error drops the probes still queued instead of waiting for them."""
    pool = ProcessPoolExecutor(max_workers=max(1, min(probes, os.cpu_count() or 1)),
                               initializer=_start_probe_worker,
                               initargs=(dies_with_this_process(), vectors))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _start_probe_worker(die_with_parent: Callable[[], None], vectors: np.ndarray) -> None:
    global _probe_vectors
    die_with_parent()
    _probe_vectors = vectors


def probe_score(positions: np.ndarray, grouping: Grouping, config: AnalysisConfig) -> Score:
    """The probe's cell of one grouping, with its own seeded shuffles and resamples (the same
    in every space, as every cell's), in a probe worker."""
    points = _probe_vectors[positions]
    folds = probe.fold_ids(grouping, config.folds, config.seed)
    return assess(
        lambda versions: probe.probe_correct(points, versions, grouping, folds),
        grouping, config.probe_shuffles, config.bootstrap, np.random.default_rng(config.seed),
        blocks=folds,
    )


def load_index(store: Store, space: SpaceKey) -> faiss.Index:
    """The space's FAISS index, refused when it was built from other embeddings."""
    meta = store.meta(store.index_path(space))
    embeddings = store.meta(store.embeddings_path(space))["recipe"]
    if meta is None or meta["recipe"].get("embeddings") != embeddings:
        raise StoreError(
            f"{store.root}: the index of {space} is missing or out of date; run "
            "`precompute index` before `precompute analyse`"
        )
    return faiss.read_index(str(store.index_path(space)))


def write_matrix(
    store: Store, images_recipe: dict, config: AnalysisConfig, attributes: list[str],
    pairs: list[tuple[str, str]], force: bool,
) -> int:
    """Rebuild analysis/separability.parquet from the up-to-date part of every space; returns
    its number of rows."""
    parts = {
        space: store.separability_part_path(space) for space in store.spaces()
        if store.is_current(
            store.separability_part_path(space),
            part_recipe(store, space, images_recipe, config),
        )
    }
    recipe = {str(space): store.meta(path)["recipe"] for space, path in parts.items()}
    scored = {str(space): store.meta(path).get("scored", "") for space, path in parts.items()}
    path = store.separability_path()
    if not force and store.is_current(path, recipe):
        return int(store.meta(path)["rows"])
    table = pd.concat([pd.read_parquet(p) for p in parts.values()] or [
        pd.DataFrame(columns=COLUMNS)
    ], ignore_index=True)
    store.write_table(path, table)
    store.commit(
        path, recipe,
        rows=len(table),
        spaces=[str(space) for space in parts],
        attributes=attributes,
        conditional=[list(pair) for pair in pairs],
        metrics=list(METRICS),
        interval=INTERVAL.format(config.bootstrap),
        baseline=BASELINE.format(config.shuffles, config.probe_shuffles),
        knn=config.knn,
        folds=config.folds,
        split=config.split,
        scored=scored,
    )
    return len(table)
