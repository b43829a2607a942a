"""Cluster stage: k-means in every feature space with k chosen by the mean silhouette.

k-means runs on the L2-normalised embeddings (the cosine geometry of the index and the maps) for
every k in `[k_min, k_max]` on a sample of at most `sample` images; the k with the highest mean
silhouette (cosine distance) wins, and every image gets the nearest centre of that fit. Clusters
are numbered by size (0 is the largest). Each cluster's over-represented attribute values are
kept in the sidecar (see enrichment.py). With `hdbscan`, HDBSCAN labels are added as well.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.metrics import silhouette_score
from tqdm.auto import tqdm

from precompute.config import ClusterConfig
from precompute.errors import ConfigError
from precompute.stages.points import write_points
from precompute.stats.enrichment import enrichment
from precompute.stats.separability import cosine_distances
from precompute.stats.vectors import normalised, normalised_chunks
from precompute.store import CATEGORICAL, ID_COLUMN, SpaceKey, Store

log = logging.getLogger(__name__)

KMEANS_STARTS = 4  # k-means++ restarts per k


@dataclass
class ClusterSummary:
    made: dict[str, int] = field(default_factory=dict)  # space → chosen k
    up_to_date: int = 0

    def line(self) -> str:
        if not self.made:
            return f"cluster: up to date ({self.up_to_date} spaces)"
        chosen = ", ".join(f"{space} k={k}" for space, k in self.made.items())
        return f"cluster: {len(self.made)} clustered ({chosen}), {self.up_to_date} up to date"


@dataclass
class KChoice:
    """The winning k-means fit and the mean silhouette of every k tried."""

    model: KMeans
    silhouette_by_k: dict[int, float]
    sample: int

    @property
    def k(self) -> int:
        return int(self.model.n_clusters)


def choose_k(
    vectors: np.ndarray, k_min: int, k_max: int, sample: int, seed: int, label: str = ""
) -> KChoice:
    """Fit k-means for each k in [k_min, k_max] on (a sample of) `vectors` scaled to unit
    length and keep the fit with the highest mean cosine silhouette."""
    rows = np.arange(len(vectors))
    if len(rows) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), sample, replace=False))
    points = normalised(vectors[rows])
    distances = cosine_distances(points)
    top = min(k_max, len(points) - 1)  # the silhouette needs 2 <= k <= n - 1
    if top < k_min:
        raise ConfigError(
            f"[cluster] k_min = {k_min} needs at least {k_min + 1} images; the set has "
            f"{len(points)}"
        )
    best, scores = None, {}
    for k in tqdm(range(k_min, top + 1), desc=f"cluster {label}".strip(), unit="k"):
        model = KMeans(n_clusters=k, n_init=KMEANS_STARTS, random_state=seed).fit(points)
        if len(np.unique(model.labels_)) < 2:  # identical points: k-means found one group
            continue
        scores[k] = float(silhouette_score(distances, model.labels_, metric="precomputed"))
        if best is None or scores[k] > scores[best.n_clusters]:
            best = model
    if best is None:
        raise ConfigError(f"{label}: k-means found no two distinct groups to cluster")
    return KChoice(best, scores, len(points))


def by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber labels so that 0 is the largest cluster (noise, -1, stays -1)."""
    clustered = labels >= 0
    sizes = np.bincount(labels[clustered])
    rank = np.empty_like(sizes)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(len(sizes))
    renumbered = labels.copy()
    renumbered[clustered] = rank[labels[clustered]]
    return renumbered


def run_cluster(
    store: Store, config: ClusterConfig, spaces: list[SpaceKey] | None = None,
    force: bool = False,
) -> ClusterSummary:
    """Cluster each feature space that is not up to date."""
    if config.k_min < 2 or config.k_max < config.k_min:
        raise ConfigError(
            f"[cluster] needs 2 <= k_min <= k_max, got k_min = {config.k_min}, "
            f"k_max = {config.k_max}"
        )
    images = store.images_meta()
    attributes = [name for name, kind in images["attributes"].items() if kind == CATEGORICAL]
    table = store.read_images(attributes)
    ids = store.read_images([ID_COLUMN])[ID_COLUMN]
    summary = ClusterSummary()
    for space in spaces or store.spaces():
        path = store.clusters_path(space)
        recipe = {
            "embeddings": store.meta(store.embeddings_path(space))["recipe"],
            "images": images["recipe"],
            "cluster": asdict(config),
        }
        if not force and store.is_current(path, recipe):
            summary.up_to_date += 1
            continue
        began = time.perf_counter()
        embeddings = store.load_embeddings(space)  # memory-mapped: read a chunk at a time
        choice = choose_k(
            embeddings, config.k_min, config.k_max, config.sample, config.seed, str(space)
        )
        labels = by_size(np.concatenate([
            choice.model.predict(chunk) for _, chunk in normalised_chunks(embeddings)]))
        columns = {ID_COLUMN: ids, "cluster": labels.astype(np.int32)}
        extra = {}
        if config.hdbscan:
            log.info("HDBSCAN of %s (%d points)", space, len(embeddings))
            found = HDBSCAN(min_cluster_size=config.min_cluster_size).fit_predict(
                normalised(embeddings))  # it needs every point at once
            columns["hdbscan"] = by_size(found).astype(np.int32)
            extra["hdbscan"] = {
                "clusters": int(columns["hdbscan"].max() + 1),
                "noise": int((columns["hdbscan"] < 0).sum()),
                "min_cluster_size": config.min_cluster_size,
                "enrichment": enrichment(columns["hdbscan"], table, attributes),
            }
        store.write_table(path, pd.DataFrame(columns))
        store.commit(
            path, recipe,
            method="kmeans",
            k=choice.k,
            silhouette=round(choice.silhouette_by_k[choice.k], 6),
            silhouette_by_k={str(k): round(s, 6) for k, s in choice.silhouette_by_k.items()},
            sample=choice.sample,
            sizes=np.bincount(labels).tolist(),
            attributes=attributes,
            enrichment=enrichment(labels, table, attributes),
            **extra,
            seconds=round(time.perf_counter() - began, 1),
        )
        summary.made[str(space)] = choice.k
    for space in spaces or store.spaces():
        write_points(store, space)
    return summary
