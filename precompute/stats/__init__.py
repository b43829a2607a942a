"""Statistics on arrays: reducers, alignment, separability, enrichment, splits, quality checks."""
