"""Which attribute values a cluster over-represents: hypergeometric p-values with BH q-values."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, hypergeom

from precompute.store import MISSING


def enrichment(labels: np.ndarray, table: pd.DataFrame, attributes: list[str]) -> list[dict]:
    """One record per (cluster, attribute, value) that the cluster holds more often than the
    whole set does, most significant first within each cluster.

    For every value present in a cluster, p is the one-sided hypergeometric probability of
    seeing at least that many images with the value among the cluster's images (both counted
    over the images whose attribute is known); q is Benjamini–Hochberg over every test made for
    this clustering. Cluster -1 (noise) is counted in the population but not reported.
    """
    tests = []
    for attribute in attributes:
        values = table[attribute].astype("string")
        known = (values.notna() & (values != MISSING)).to_numpy()
        counts = pd.crosstab(labels[known], values[known].to_numpy())
        observed = counts.to_numpy()
        cluster_sizes = observed.sum(axis=1, keepdims=True)
        value_totals = observed.sum(axis=0, keepdims=True)
        population = int(observed.sum())
        expected = cluster_sizes * value_totals / population
        p_values = hypergeom.sf(observed - 1, population, value_totals, cluster_sizes)
        for i, j in zip(*np.nonzero(observed), strict=True):
            tests.append({
                "cluster": int(counts.index[i]),
                "attribute": attribute,
                "value": str(counts.columns[j]),
                "count": int(observed[i, j]),
                "cluster_size": int(cluster_sizes[i, 0]),
                "expected": float(expected[i, j]),
                "fold": float(observed[i, j] / expected[i, j]),
                "p_value": float(p_values[i, j]),
            })
    if not tests:
        return []
    q_values = false_discovery_control([t["p_value"] for t in tests], method="bh")
    for test, q in zip(tests, q_values, strict=True):
        test["q_value"] = float(q)
        test["expected"] = round(test["expected"], 4)
        test["fold"] = round(test["fold"], 4)
    over = [t for t in tests if t["fold"] > 1 and t["cluster"] >= 0]
    return sorted(over, key=lambda t: (t["cluster"], t["p_value"], t["attribute"], t["value"]))
