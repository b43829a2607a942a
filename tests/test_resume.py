"""An embedding run killed mid-way resumes at the first unfinished batch, with no corrupt array."""

from __future__ import annotations

import json

import numpy as np

from precompute.cli import main
from precompute.config import EmbedConfig, ModelConfig
from precompute.info import describe_store
from precompute.nn.sources import PretrainedSource
from precompute.stages.embed import run_embed
from precompute.store import SpaceKey, Store
from tests.helpers import kill_when, write_config

SPACE = SpaceKey("efficientnet_lite0/pretrained", "penultimate")


def test_killed_embedding_resumes_without_redoing_finished_batches(small_tree, built_store,
                                                                   tmp_path):
    config = write_config(tmp_path / "config.toml", small_tree, batch_size=4)
    store_dir = tmp_path / "store"
    assert main(["-q", "ingest", "--config", str(config), "--store", str(store_dir)]) == 0
    store = Store.open(store_dir)
    progress = store.embed_progress_path("efficientnet_lite0/pretrained")

    def rows_saved() -> int:
        return json.loads(progress.read_text())["rows_done"] if progress.exists() else 0

    rows_done = kill_when(["-q", "embed", "--store", str(store_dir)], rows_saved, timeout=120)
    assert 0 < rows_done < 66, "the run should have been killed part-way"

    # Nothing that looks complete was left behind, and `info` says what is unfinished.
    assert store.spaces() == []
    assert not store.embeddings_path(SPACE).exists()
    [unfinished] = describe_store(store)["unfinished"]
    assert unfinished["stage"] == "embed" and unfinished["model"] == "efficientnet_lite0/pretrained"
    assert unfinished["file"] == "spaces/efficientnet_lite0/pretrained/embed-progress.json"
    assert rows_done <= unfinished["rows_done"] < unfinished["rows"] == 66

    summary = run_embed(
        store, EmbedConfig(batch_size=4, workers=2, progress_every_s=0),
        PretrainedSource(ModelConfig(backbone="efficientnet_lite0")),
    )
    assert summary.resumed_from >= rows_done
    assert summary.embedded == 66 - summary.resumed_from
    assert [s.layer for s in store.spaces()] == ["_blocks.3", "_blocks.7", "_blocks.11",
                                                 "penultimate"]
    assert not progress.exists()
    assert describe_store(store)["unfinished"] == []

    resumed = np.asarray(store.load_embeddings(SPACE), dtype=np.float32)
    uninterrupted = np.asarray(Store.open(built_store).load_embeddings(SPACE), dtype=np.float32)
    assert np.allclose(resumed, uninterrupted, rtol=2e-2, atol=2e-2)
