"""Offline pipeline: ingest a dataset, embed it, project, index and thumbnail it into a store.

Importing this package is cheap: torch and the projection libraries are imported only by the
stages that need them, so the explorer can read a store through `precompute.store` alone.
As a library: `build` makes a store from a config file or a DataFrame of image paths, and
`open_store` reads one as DataFrames and arrays (precompute/api.py).
"""

from precompute.api import StoreData, build, open_store

__all__ = ["StoreData", "build", "open_store"]
