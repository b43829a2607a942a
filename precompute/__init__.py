"""Offline pipeline: ingest a dataset, embed it, project, index and thumbnail it into a store.

Importing this package imports neither torch nor the learning and projection libraries (only
NumPy, pandas and pydantic: 0.8–0.9 s on a 2-core machine, `python -X importtime -c "import
precompute"`); the stages import them when they run, so the explorer reads a store through
`precompute.store` with the viewer install alone.
As a library: `build` makes a store from a config file or a DataFrame of image paths, and
`open_store` reads one as DataFrames and arrays (precompute/api.py).
"""

from precompute.api import StoreData, build, open_store

__all__ = ["StoreData", "build", "open_store"]
