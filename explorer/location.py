"""Which store `panel serve app` explores: `--store DIR`, else FSE_STORE, else the sample store."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE_STORE = REPO / "sample_data" / "store"
SAMPLE_BUILD_COMMAND = "make store"
STORE_VARIABLE = "FSE_STORE"


def store_root(argv: list[str]) -> Path:
    """The store named by `--store` in the app's arguments or by FSE_STORE, else the sample."""
    parser = argparse.ArgumentParser(prog="panel serve app --args")
    parser.add_argument("--store", default=os.environ.get(STORE_VARIABLE) or str(SAMPLE_STORE))
    return Path(parser.parse_args(argv).store).resolve()


def build_hint(root: Path) -> str:
    """The command that builds the store at `root`."""
    if root == SAMPLE_STORE:
        return SAMPLE_BUILD_COMMAND
    return f"precompute all --config YOUR_CONFIG.toml --store {root}"
