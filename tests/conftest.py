"""Shared fixtures: small real image sets taken from sample_data, and a store built from them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import HEAD_TRAINING, copy_tree, sample_paintings, write_config

os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "feature-space-explorer" / "numba")
)


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """66 real paintings in a Style/artist_title.jpg tree."""
    return copy_tree(sample_paintings(), tmp_path_factory.mktemp("paintings"))


# The 66 paintings have 2-3 per artist: let classes that small in, and keep the chance
# estimates cheap (the defaults are for real datasets).
SMALL_ANALYSIS = """
[analysis]
min_class_size = 2
shuffles = 5
probe_shuffles = 1
bootstrap = 200
"""


@pytest.fixture(scope="session")
def built_store(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store built by `precompute all` from the 66 paintings: all stages, all projections of
    the default layers (three stages and the penultimate), a head fine-tuned on style, clusters
    and separability."""
    from precompute.cli import main

    work = tmp_path_factory.mktemp("built")
    config = write_config(work / "config.toml", small_tree, extra=SMALL_ANALYSIS + HEAD_TRAINING)
    store = work / "store"
    assert main(["-q", "all", "--config", str(config), "--store", str(store)]) == 0
    return store
