"""Offline pipeline: ingest a dataset, embed it, project, index and thumbnail it into a store.

Importing this package is cheap: torch and the projection libraries are imported only by the
stages that need them, so the explorer can read a store through `precompute.store` alone.
"""
