"""Shared fixtures: small real image sets taken from sample_data, and a store built from them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import copy_tree, sample_paintings, write_config

os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "feature-space-explorer" / "numba")
)

@pytest.fixture(scope="session")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """66 real paintings in a Style/artist_title.jpg tree."""
    return copy_tree(sample_paintings(), tmp_path_factory.mktemp("paintings"))


@pytest.fixture(scope="session")
def built_store(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store built by `precompute all` from the 66 paintings: all stages, all projections."""
    from precompute.cli import main

    work = tmp_path_factory.mktemp("built")
    config = write_config(work / "config.toml", small_tree)
    store = work / "store"
    assert main(["-q", "all", "--config", str(config), "--store", str(store)]) == 0
    return store
