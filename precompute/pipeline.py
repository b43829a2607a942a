"""The stages in order, each a function `(store, config, force) -> summary with .line()`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from precompute.config import RunConfig
from precompute.store import Store


def ingest(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.ingest import run_ingest

    return run_ingest(config.dataset, store, force=force)


def embed(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.embed import PretrainedSource, run_embed

    return run_embed(store, config.embed, PretrainedSource(config.model), force=force)


def train(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.train import run_train

    return run_train(store, config, force=force)


def project(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.project import run_project

    return run_project(store, config.projection, force=force)


def index(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.index import run_index

    return run_index(store, config.index, force=force)


def thumbs(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.thumbs import run_thumbs

    return run_thumbs(store, config.thumbnails, workers=config.dataset.workers, force=force)


def cluster(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.cluster import run_cluster

    return run_cluster(store, config.cluster, force=force)


def analyse(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.analyse import run_analyse

    return run_analyse(store, config.analysis, force=force)


STAGES: dict[str, Callable[[Store, RunConfig, bool], Any]] = {
    "ingest": ingest,
    "embed": embed,
    "train": train,
    "project": project,
    "index": index,
    "thumbs": thumbs,
    "cluster": cluster,
    "analyse": analyse,
}


def run_stages(
    store: Store, config: RunConfig, names: list[str], force: bool = False,
    report: Callable[[str], None] = print,
) -> list[str]:
    """Run the named stages in pipeline order, reporting each one's summary line as it ends."""
    lines = []
    for name in [n for n in STAGES if n in names]:
        summary = STAGES[name](store, config, force)
        report(summary.line())
        lines.append(summary.line())
    return lines
