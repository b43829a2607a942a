"""What `panel serve app` explores and how: the store (`--store DIR`, else FSE_STORE, else the
sample store) and the Dask scheduler of the map, if any (`--dask [SCHEDULER]`, else FSE_DASK).

The sample store is `sample_data/store` under the folder the server is started from (a
checkout, where `make demo` builds it); an installed package carries no dataset, so elsewhere
the page says how to build one or which store to pass."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

SAMPLE_STORE = Path("sample_data") / "store"
SAMPLE_CONFIG = Path("sample_data") / "config.toml"
STORE_VARIABLE = "FSE_STORE"
DASK_VARIABLE = "FSE_DASK"
LOCAL_CLUSTER = "local"  # the scheduler that is a Dask cluster started in the server's process


def store_root(argv: list[str]) -> Path:
    """The store named by `--store` in the app's arguments or by FSE_STORE, else the sample
    store under the current folder."""
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
    """The command that builds the store at `root`: the sample store's own where its config
    is at hand (a checkout), else the general one."""
    if root == SAMPLE_STORE.resolve() and SAMPLE_CONFIG.exists():
        return f"make store    # or: precompute all --config {SAMPLE_CONFIG} --store {root}"
    return (f"precompute all --config YOUR_CONFIG.toml --store {root}\n"
            f"# or serve a store built elsewhere: panel serve app --args --store DIR")
