"""The stages in order, each a function `(store, config, force) -> summary with .line()`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from precompute.config import RunConfig
from precompute.nn.distributed import current_shard, process_group, wait_for_all
from precompute.preflight import check_after_ingest, check_before_stages
from precompute.progress import recorded_build, step
from precompute.store import Store


def ingest(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.stages.ingest import run_ingest

    return run_ingest(config.dataset, store, force=force)


@dataclass
class EachRun:
    """The summaries of a stage that runs once per backbone or per training run."""

    parts: list[Any]

    def line(self) -> str:
        return "\n".join(part.line() for part in self.parts)


def embed(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.nn.sources import PretrainedSource
    from precompute.stages.embed import embed_in_every_process

    return EachRun([
        embed_in_every_process(store, config.embed, PretrainedSource(model), force,
                               current_shard())
        for model in config.model.each_backbone()
    ])


def quality(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.stages.quality import run_quality

    return run_quality(store, config, force=force)


def train(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.stages.train import TrainSummary, run_train

    runs = run_train(store, config, force=force, shard=current_shard())
    return EachRun(runs) if runs else TrainSummary()  # its line: no target, nothing to train


def project(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.stages.project import run_project

    return run_project(store, config.projection, force=force)


def project_before_training(store: Store, config: RunConfig, force: bool) -> Any:
    """The maps of the pretrained layers: training replaces the fine-tuned spaces, so their
    maps wait for project's run after it."""
    from precompute.stages.project import run_project

    spaces = [space for space in store.spaces() if space.pretrained]
    return run_project(store, config.projection, spaces=spaces, force=force)


def index(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.stages.index import run_index

    return run_index(store, config.index, force=force)


def thumbs(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.stages.thumbs import run_thumbs

    return run_thumbs(store, config.thumbnails, workers=config.dataset.workers, force=force)


def cluster(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.stages.cluster import run_cluster

    return run_cluster(store, config.cluster, force=force)


def analyse(store: Store, config: RunConfig, force: bool) -> Any:
    from precompute.stages.analyse import run_analyse

    return run_analyse(store, config.analysis, force=force)


NUMBA_CACHE = Path.home() / ".cache" / "feature-space-explorer" / "numba"


def cache_numba_kernels() -> None:
    """Keep UMAP's and datashader's compiled numba kernels on disk (about 30 s per process
    otherwise), unless NUMBA_CACHE_DIR already names a place."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(NUMBA_CACHE))


# Stages every torchrun process runs on its own share of the images; the main process runs the
# others alone while the rest wait.
SHARDED_STAGES = ("embed", "train")

STAGES: dict[str, Callable[[Store, RunConfig, bool], Any]] = {
    "ingest": ingest,
    "embed": embed,
    "quality": quality,
    "train": train,
    "project": project,
    "index": index,
    "thumbs": thumbs,
    "cluster": cluster,
    "analyse": analyse,
}

# The order a run takes its stages in. The thumbnails and the maps of the embedded layers come
# first, so the explorer can show a map (penultimate layer first, its fastest method first)
# while the quality checks, training and analysis run; project runs again after training for
# the fine-tuned spaces, the maps made before counting as up to date.
ORDER = ["ingest", "embed", "thumbs", "project", "quality", "train", "project", "index",
         "cluster", "analyse"]


def stage_order(names: list[str]) -> list[str]:
    """The named stages in run order: each once, but project twice when training runs too."""
    ordered: list[str] = []
    for name in ORDER:
        if name in names and (name not in ordered or "train" in names):
            ordered.append(name)
    return ordered


@dataclass
class StageRun:
    """What one stage did: its name, wall time and summary line."""

    name: str
    seconds: float
    line: str


def stage_table(runs: list[StageRun]) -> str:
    """The stages of a run as a table of wall time and what each did or skipped."""
    width = max(len(run.name) for run in runs)
    rows = [f"{'stage':<{width}}  {'time':>8}  result"]
    for run in runs:
        first, *rest = run.line.splitlines() or [""]
        rows.append(f"{run.name:<{width}}  {run.seconds:>6.1f} s  {first}")
        rows += [f"{'':<{width}}  {'':>8}  {line}" for line in rest]
    return "\n".join(rows)


def run_stages(
    store: Store, config: RunConfig, names: list[str], force: bool = False,
    report: Callable[[str], None] = print,
) -> list[StageRun]:
    """Run the named stages in pipeline order, reporting each one's summary line as it ends;
    returns what each did, with its wall time.

    Under torchrun (several processes), the sharded stages run in every process and the others
    in the main process only; all processes finish each stage before the next begins."""
    shard = current_shard()
    runs: list[StageRun] = []
    ordered = stage_order(names)
    first_after_ingest = next((n for n in ordered if n != "ingest"), None)
    check_before_stages(config, names)
    with process_group(shard), recorded_build(store, ordered, shard.is_main) as progress:
        for name in ordered:
            if name == first_after_ingest:
                check_after_ingest(store, config)
            if shard.is_main or name in SHARDED_STAGES:
                # project's first run, before training, maps the pretrained layers; its second
                # only adds what training made (forced or not)
                again = name in (run.name for run in runs)
                stage = (project_before_training if name == "project" and not again
                         and "train" in ordered else STAGES[name])
                with step(store, progress, name):
                    began = time.perf_counter()
                    summary = stage(store, config, force and not again)
                line = summary.line() + (f" [rank {shard.rank}]" if shard.sharded else "")
                report(line)
                runs.append(StageRun(name, time.perf_counter() - began, line))
            wait_for_all(shard)
    return runs
