"""Select the images with one attribute value (a cluster, a style, an artist), show which
attribute values a selected cluster over-represents (the cluster stage's enrichment test), and
write each cluster's most over-represented value at its centre on the map."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import panel as pn

from explorer.data import ExplorerData
from explorer.state import ExplorerState
from precompute.store import CATEGORICAL, SpaceKey

DOMINANT_SHARE = 0.8  # a selection this much inside one cluster shows that cluster's enrichment
ENRICHMENT_ROWS = 10
SIGNIFICANT_Q = 0.05  # a cluster's label names only values over-represented at this q or lower


def select_by_value(data: ExplorerData, state: ExplorerState) -> pn.Row:
    """`Select images whose [attribute] is [value]`."""
    attribute = pn.widgets.Select(label="Select images whose", width=160,
                                  options=data.attributes_of(CATEGORICAL),
                                  css_classes=["fse-select-attribute"])

    def offered(chosen: str, space: str) -> list[str]:
        return [str(v) for v in data.value_counts(chosen, SpaceKey.parse(space)).index]

    value = pn.widgets.Select(label="is", width=220, css_classes=["fse-select-value"],
                              options=pn.bind(offered, attribute.param.value, state.param.space))
    go = pn.widgets.Button(label="Select", color="primary", width=90,
                           css_classes=["fse-select-go"], align="end")

    def select(_event) -> None:
        column = data.column(attribute.value, SpaceKey.parse(state.space))
        state.select(np.flatnonzero((column == value.value).to_numpy()))

    go.on_click(select)
    return pn.Row(attribute, value, go)


def enrichment_html(data: ExplorerData, space: SpaceKey, rows: np.ndarray) -> str:
    """When the selection lies (mostly) in one cluster of `space`: the attribute values that
    cluster over-represents, with fold enrichment and Benjamini–Hochberg q."""
    meta = data.store.meta(data.store.clusters_path(space))
    if meta is None or not len(rows):
        return ""
    clusters = data.clusters(space).iloc[rows].cat.codes.to_numpy()
    counts = np.bincount(clusters[clusters >= 0])
    if not len(counts) or counts.max() < DOMINANT_SHARE * len(rows):
        return ""
    cluster = int(counts.argmax())
    records = sorted((r for r in meta["enrichment"] if r["cluster"] == cluster),
                     key=lambda r: r["q_value"])[:ENRICHMENT_ROWS]
    if not records:
        return (f"<div class='fse-enrichment'><b>cluster {cluster}</b>: no attribute value is "
                "over-represented.</div>")
    body = "".join(
        f"<tr><td>{html.escape(str(r['attribute']))}</td><td>{html.escape(str(r['value']))}"
        f"</td><td>{r['count']:,} of {r['cluster_size']:,}</td><td>{r['expected']:.1f}</td>"
        f"<td>{r['fold']:.2f}×</td><td>{r['q_value']:.2g}</td></tr>"
        for r in records
    )
    return (
        f"<div class='fse-enrichment'><b>cluster {cluster}</b> of {html.escape(str(space))} "
        f"(k = {meta['k']}) over-represents:<table class='fse-counts'><tr><th>attribute</th>"
        "<th>value</th><th>in cluster</th><th>expected</th><th>fold</th><th>q</th></tr>"
        f"{body}</table></div>"
    )


def cluster_label_table(data: ExplorerData, space: SpaceKey, method: str,
                        attribute: str) -> pd.DataFrame:
    """x, y and text of each cluster of `space` on its `method` map: at the median of its
    points, the value of `attribute` it over-represents most significantly (with "+N" when N
    more have the same p-value), or of the first attribute the cluster stage tested when it did
    not test `attribute`. Clusters that over-represent nothing get no label."""
    return data.derived(("cluster labels", space, method, attribute),
                        lambda: _label_table(data, space, method, attribute))


def _label_table(data: ExplorerData, space: SpaceKey, method: str,
                 attribute: str) -> pd.DataFrame:
    meta = data.store.meta(data.store.clusters_path(space))
    if meta is None or not meta["attributes"]:
        return pd.DataFrame({"x": [], "y": [], "text": []})
    tested = attribute if attribute in meta["attributes"] else meta["attributes"][0]
    xy = data.coords(space, method)
    codes = data.clusters(space).cat.codes.to_numpy()
    rows = []
    for cluster in range(len(meta["sizes"])):
        records = [r for r in meta["enrichment"] if r["cluster"] == cluster
                   and r["attribute"] == tested and r["q_value"] <= SIGNIFICANT_Q]
        if not records:
            continue
        best = min(records, key=lambda r: (r["p_value"], -r["count"]))
        ties = sum(r["p_value"] == best["p_value"] for r in records) - 1
        members = codes == cluster
        x, y = np.median(xy[members], axis=0)
        rows.append({"x": float(x), "y": float(y),
                     "text": best["value"] + (f" +{ties}" if ties else "")})
    return pd.DataFrame(rows, columns=["x", "y", "text"])
