"""Under torchrun: embedding sharded over processes, each writing its own part, then merged into
one store, equals embedding the same images in one process; fine-tuning trains one model with
DistributedDataParallel replicas in every process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from precompute.cli import main
from precompute.config import EmbedConfig, ModelConfig
from precompute.info import describe_store
from precompute.nn.distributed import Shard
from precompute.nn.sources import PretrainedSource
from precompute.stages.embed import run_embed
from precompute.store import ID_COLUMN, SpaceKey, Store
from tests.helpers import HEAD_TRAINING, write_config

LAYERS = ["_blocks.3", "_blocks.7", "_blocks.11", "penultimate"]


def torchrun(processes: int, *arguments: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N -m precompute.cli …`, as a user would run it."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "precompute.cli", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def sharded_build(small_tree: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[Path, Path]:
    """A store ingested and embedded by two torchrun processes, and its config (which also
    holds a training section, for the training test)."""
    work = tmp_path_factory.mktemp("torchrun")
    config = write_config(work / "config.toml", small_tree, batch_size=8, extra=HEAD_TRAINING)
    store_dir = work / "store"
    for stage in ("ingest", "embed"):
        run = torchrun(2, "-q", stage, "--config", str(config), "--store", str(store_dir))
        assert run.returncode == 0, run.stderr[-3000:]
    return store_dir, config


def test_sharded_embedding_and_merge_equal_single_process_embedding(sharded_build,
                                                                    built_store):
    store_dir, _ = sharded_build
    sharded, single = Store.open(store_dir), Store.open(built_store)
    assert sharded.read_images([ID_COLUMN]).equals(single.read_images([ID_COLUMN]))
    assert [s.layer for s in sharded.spaces()] == LAYERS
    for space in sharded.spaces():
        merged = np.asarray(sharded.load_embeddings(space), dtype=np.float32)
        reference = np.asarray(single.load_embeddings(space), dtype=np.float32)
        assert merged.shape == reference.shape == (66, merged.shape[1])
        # Same network, same images; only the batches differ (float16 storage).
        np.testing.assert_allclose(merged, reference, rtol=1e-2, atol=1e-2)
        assert sharded.meta(sharded.embeddings_path(space))["ranks"] == 2
    # The parts and the ranks' progress files are gone once merged.
    assert not list(Path(store_dir, "spaces").rglob("parts"))
    assert not list(Path(store_dir, "spaces").rglob("embed-progress*"))

    # The merged arrays carry the recipe one process would have written: nothing is redone.
    again = run_embed(sharded, EmbedConfig(batch_size=8, workers=2, progress_every_s=0),
                      PretrainedSource(ModelConfig(backbone="efficientnet_lite0")))
    assert again.skipped


def test_info_lists_the_parts_waiting_for_their_merge(small_tree, tmp_path):
    """One rank of two has finished its part: `precompute info` says so for every layer."""
    config = write_config(tmp_path / "config.toml", small_tree, batch_size=8)
    store_dir = tmp_path / "store"
    assert main(["-q", "ingest", "--config", str(config), "--store", str(store_dir)]) == 0
    store = Store.open(store_dir)
    run_embed(store, EmbedConfig(batch_size=8, workers=2, progress_every_s=0),
              PretrainedSource(ModelConfig(backbone="efficientnet_lite0")), shard=Shard(0, 2))
    assert store.spaces() == []
    assert describe_store(store)["unfinished"] == [
        {"stage": "embed", "space": f"efficientnet_lite0/pretrained/{layer}", "parts_done": 1,
         "parts": 2}
        for layer in sorted(LAYERS)
    ]


def test_training_under_torchrun_trains_one_model_in_both_processes(sharded_build, tmp_path):
    store_dir = Path(shutil.copytree(sharded_build[0], tmp_path / "store"))
    run = torchrun(2, "train", "--config", str(sharded_build[1]), "--store", str(store_dir))
    assert run.returncode == 0, run.stderr[-3000:]
    # Both processes trained (each reports its own line), for the same number of epochs:
    # they took the same early-stopping decisions.
    trained = [line for line in run.stdout.splitlines() if line.startswith("train ")]
    assert sorted(line[-8:] for line in trained) == ["[rank 0]", "[rank 1]"]
    assert len({line.split(" epochs")[0] for line in trained}) == 1

    store = Store.open(store_dir)
    model = "efficientnet_lite0/finetuned-style-head"
    best = store.meta(store.checkpoint_path(model, "best"))
    assert best["processes"] == 2
    assert 1 <= best["best_epoch"] <= best["epochs"]
    metrics = store.meta(store.predictions_path(model))["metrics"]
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert store.embeddings_path(SpaceKey(model, "penultimate")).exists()
