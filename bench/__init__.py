"""Benchmarks: scripts that print tables; results in docs/benchmarks.md."""
