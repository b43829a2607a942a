"""Project stage: reduce every feature space to 2D with every configured method.

Embeddings are L2-normalised first, so distances on the map follow cosine similarity (the
metric of the nearest-neighbour index). Coordinates are stored as float32 arrays; the fitted
reducer is kept beside them so new images can be placed on the same map later.

With `align`, each layer's map is moved (rotation/reflection, uniform scale, translation) onto
the map of the same method of its model's reference layer, the penultimate, so a selection stays
roughly in place as the user switches layers. The sidecar's `alignment` holds the transform
from the reducer's output to the stored coordinates.

Each map is scored against its layer's full space (neighbour preservation and trustworthiness on
a seeded sample, stats/map_trust.py); the sidecar's `trust` holds the scores, so the explorer
can say how far a map keeps its layer's neighbourhoods. A map made before scores existed is
scored without being remade.
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from precompute.config import ProjectionConfig
from precompute.stages.points import write_points
from precompute.stages.x_sorted import write_x_sorted
from precompute.stats.align import procrustes_alignment
from precompute.stats.map_trust import map_trust, score_sample
from precompute.stats.reducers import make_reducer
from precompute.stats.vectors import normalised
from precompute.store import PENULTIMATE, SpaceKey, Store, atomic_path, library_versions

log = logging.getLogger(__name__)
TRANSFORM_CHUNK = 50_000  # points placed per `transform` call above the fit sample


@dataclass
class ProjectSummary:
    made: list[str] = field(default_factory=list)
    up_to_date: int = 0
    scored: int = 0  # up-to-date maps that had no trust scores yet
    blocked: int = 0  # up-to-date maps that had no current blocked copy (projections/by-x)
    seconds: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        scored = f", {self.scored} scored" if self.scored else ""
        scored += f", {self.blocked} copied in blocks" if self.blocked else ""
        if not self.made:
            return f"project: up to date ({self.up_to_date} projections{scored})"
        timing = ", ".join(f"{name} {s:.1f} s" for name, s in self.seconds.items())
        return (f"project: {len(self.made)} made, {self.up_to_date} up to date{scored} "
                f"({timing})")


def reference_space(spaces: list[SpaceKey], space: SpaceKey) -> SpaceKey:
    """The layer whose maps `space`'s maps are aligned to: its model's penultimate, else the
    model's deepest layer (`spaces` in store order, shallow to deep)."""
    same_model = [s for s in spaces if s.model == space.model]
    penultimate = SpaceKey(space.model, PENULTIMATE)
    return penultimate if penultimate in same_model else same_model[-1]


def fit_and_place(reducer, embeddings: np.ndarray, fit_sample: int, seed: int,
                  label: str) -> np.ndarray:
    """2D coordinates of every row of `embeddings` (float32), each row scaled to unit length as
    it is read: `reducer` fitted on all of them, or, above `fit_sample` rows, fitted on a
    seeded sample of that size, the others placed on its map by its `transform` in chunks
    (with a progress bar)."""
    if len(embeddings) <= fit_sample:
        return np.asarray(reducer.fit_transform(normalised(embeddings)), dtype=np.float32)
    fitted = np.sort(np.random.default_rng(seed).choice(len(embeddings), fit_sample,
                                                        replace=False))
    coords = np.empty((len(embeddings), 2), dtype=np.float32)
    coords[fitted] = reducer.fit_transform(normalised(embeddings[fitted]))
    rest = np.setdiff1d(np.arange(len(embeddings)), fitted)
    log.info("%s: fitted on %d sampled points; placing the other %d", label, fit_sample,
             len(rest))
    with tqdm(total=len(rest), desc=f"place {label}", unit="pt") as bar:
        for start in range(0, len(rest), TRANSFORM_CHUNK):
            rows = rest[start:start + TRANSFORM_CHUNK]
            coords[rows] = reducer.transform(normalised(embeddings[rows]))
            bar.update(len(rows))
    return coords


def trust_record(embeddings: np.ndarray, coords: np.ndarray, seed: int) -> dict[str, Any]:
    """A map's trust scores for its sidecar, measured on a seeded sample of its images."""
    rows = score_sample(len(embeddings), seed)
    return map_trust(embeddings[rows], np.asarray(coords)[rows]).record()


def add_missing_trust(store: Store, space: SpaceKey, method: str, embeddings: np.ndarray,
                      seed: int) -> bool:
    """Score a finished map made before maps were scored, keeping its sidecar otherwise as
    it was; whether it needed it."""
    path = store.projection_path(space, method)
    meta = store.meta(path)
    if "trust" in meta:
        return False
    kept = {key: value for key, value in meta.items() if key not in ("recipe", "written")}
    trust = trust_record(embeddings, store.load_projection(space, method), seed)
    store.commit(path, meta["recipe"], **kept, trust=trust)
    return True


def run_project(
    store: Store, config: ProjectionConfig, spaces: list[SpaceKey] | None = None,
    force: bool = False,
) -> ProjectSummary:
    """Compute each configured projection of each feature space that is not up to date."""
    summary = ProjectSummary()
    every_space = store.spaces()
    references = {space: reference_space(every_space, space) for space in every_space}
    # References first, so the maps aligned to them are aligned to their current coordinates.
    todo = sorted(spaces or every_space, key=lambda space: references.get(space) != space)
    for space in todo:
        source = store.meta(store.embeddings_path(space))
        reference = references.get(space) if config.align else None
        embeddings = store.load_embeddings(space)  # memory-mapped: read a chunk at a time
        count = len(embeddings)
        for method in config.methods:
            path = store.projection_path(space, method)
            recipe = {
                "embeddings": source["recipe"],
                "method": method,
                "seed": config.seed,
                "params": config.params.get(method, {}),
            }
            target = None
            if reference is not None and reference != space:
                target = store.meta(store.projection_path(reference, method))
            if target is not None:
                recipe["align_to"] = {"space": str(reference), "projection": target["recipe"]}
            if count > config.fit_sample:
                recipe["fit_sample"] = config.fit_sample  # below it, fitted on every point
            if not force and store.is_current(path, recipe):
                summary.up_to_date += 1
                summary.scored += add_missing_trust(store, space, method, embeddings,
                                                    config.seed)
                summary.blocked += write_x_sorted(store, space, method)  # a store from before
                continue
            began = time.perf_counter()
            reducer = make_reducer(
                method, min(count, config.fit_sample), embeddings.shape[1], config.seed,
                **config.params.get(method, {}),
            )
            log.info("projecting %s with %s (%d points)", space, method, count)
            coords = fit_and_place(reducer, embeddings, config.fit_sample, config.seed,
                                   f"{space}:{method}")
            alignment = None
            if target is not None:
                fit = procrustes_alignment(coords, store.load_projection(reference, method))
                coords = fit.apply(coords)
                alignment = {"to": str(reference), **fit.record()}
            seconds = time.perf_counter() - began
            trust = trust_record(embeddings, coords, config.seed)
            store.invalidate(store.x_sorted_path(space, method))  # never a copy of other points
            store.write_array(path, coords)
            with atomic_path(store.reducer_path(space, method)) as tmp:
                tmp.write_bytes(pickle.dumps(reducer, protocol=pickle.HIGHEST_PROTOCOL))
            store.commit(
                path, recipe, seconds=round(seconds, 2), count=len(coords), alignment=alignment,
                trust=trust, reducer_written_by=library_versions(),
            )
            write_x_sorted(store, space, method)  # the remade map's (its old one is gone)
            summary.made.append(f"{space}:{method}")
            summary.seconds[f"{space}:{method}"] = seconds
        write_points(store, space)
    return summary
