"""The dashboard library: read a store and build the Panel/HoloViews views that explore it.

Nothing here imports torch at import time; the explorer reads the store through
`precompute.store` and renders server-side with datashader.
"""
