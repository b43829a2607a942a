"""What `panel serve app` explores and how: the store (`--store DIR`, else FSE_STORE, else the
sample store) and the Dask scheduler of the map, if any (`--dask [SCHEDULER]`, else FSE_DASK)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE_STORE = REPO / "sample_data" / "store"
SAMPLE_BUILD_COMMAND = "make store"
STORE_VARIABLE = "FSE_STORE"
DASK_VARIABLE = "FSE_DASK"
LOCAL_CLUSTER = "local"  # the scheduler that is a Dask cluster started in the server's process


def store_root(argv: list[str]) -> Path:
    """The store named by `--store` in the app's arguments or by FSE_STORE, else the sample."""
    return Path(_arguments(argv).store).resolve()


def dask_scheduler(argv: list[str]) -> str | None:
    """The Dask scheduler the map's image is aggregated through: `--dask` alone or
    FSE_DASK=local for a cluster in the server's process, `--dask tcp://host:port` or
    FSE_DASK=tcp://host:port for a running scheduler; None (in memory) without either."""
    return _arguments(argv).dask


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="panel serve app --args")
    parser.add_argument("--store", default=os.environ.get(STORE_VARIABLE) or str(SAMPLE_STORE))
    parser.add_argument("--dask", nargs="?", const=LOCAL_CLUSTER, metavar="SCHEDULER",
                        default=os.environ.get(DASK_VARIABLE) or None)
    return parser.parse_args(argv)


def build_hint(root: Path) -> str:
    """The command that builds the store at `root`."""
    if root == SAMPLE_STORE:
        return SAMPLE_BUILD_COMMAND
    return f"precompute all --config YOUR_CONFIG.toml --store {root}"
