"""Benchmark measures: each function measures one thing and returns result rows.

A row is {"measure", "n", "dim", "value", "unit", "goal", "met"}; `goal` is a number with the
comparison in `met`. Times are medians of repeated runs unless the unit says p95.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Row = dict[str, object]


def row(measure: str, n: int, dim: int | None, value: float, unit: str,
        goal: float | None = None, lower_is_better: bool = True) -> Row:
    """One result row; `met` compares value and goal in the stated direction."""
    met = None if goal is None else bool(value <= goal if lower_is_better else value >= goal)
    return {"measure": measure, "n": n, "dim": dim, "value": round(float(value), 3),
            "unit": unit, "goal": goal, "met": met}


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of each of `repeats` calls."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return times


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


# --------------------------------------------------------------------- explorer, server side
def explorer_measures(store: Path, render_goal: float | None, repeats: int = 15) -> list[Row]:
    """Render after pan/zoom, hover look-up, lasso → ids + first grid page, on one store."""
    from explorer.cards import image_card
    from explorer.data import load_explorer_data
    from explorer.page import new_state
    from explorer.scatter import MapRequest, render_map
    from explorer.selection import selection_panel
    from explorer.url_state import selection_value

    data = load_explorer_data(str(store.resolve()))
    space = data.spaces[0]
    method = data.methods[space][0]
    colour = data.colour_attributes[0]
    n, dim = len(data), int(data.store.meta(data.store.embeddings_path(space))["dim"])
    rng = np.random.default_rng(0)
    rows: list[Row] = []

    render_map(data, MapRequest(str(space), method, colour, (-1, 1), (-1, 1), 800, 600))

    def pan_zoom() -> None:
        width = rng.uniform(0.3, 2.1)
        cx, cy = rng.uniform(-0.6, 0.6, 2)
        render_map(data, MapRequest(str(space), method, colour,
                                    (cx - width / 2, cx + width / 2),
                                    (cy - width * 0.375, cy + width * 0.375), 800, 600))

    rows.append(row("render after pan/zoom (server, 800×600)", n, dim,
                    statistics.median(timed(pan_zoom, repeats)), "ms", render_goal))

    points = data.points(space, method)
    began = time.perf_counter()
    _ = points.tree
    rows.append(row("hover index build (once per projection)", n, dim,
                    (time.perf_counter() - began) * 1000, "ms"))
    coords = data.coords(space, method)

    def hover() -> None:
        x, y = coords[rng.integers(n)] + rng.normal(0, 0.005, 2)
        found = points.nearest(float(x), float(y), radius=0.02)
        if found is not None:
            image_card(data, found)

    rows.append(row("hover look-up + card", n, dim, p95(timed(hover, 200)), "ms p95",
                    50 if n >= 10_000_000 else None))

    state = new_state(data)
    state.param.update(space=str(space), method=method, color_by=colour)
    selection_panel(data, state)  # a session's selection view: counts, grid, its first page

    def lasso() -> None:
        """What a session's server does for a lasso, but the Bokeh document's update."""
        cx, cy = coords[rng.integers(n)]
        angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
        radius = rng.uniform(0.05, 0.25, 40)
        state.select(points.in_polygon(cx + radius * np.cos(angles),
                                       cy + radius * np.sin(angles)))
        selection_value(state, data)  # the link's value

    rows.append(row("lasso → selected ids + first grid page", n, dim,
                    statistics.median(timed(lasso, repeats)), "ms",
                    200 if n >= 10_000_000 else None))
    return rows


def knn_measure(store: Path, queries: int = 200) -> list[Row]:
    """k=10 query latency of the store's index, and its recall@10 against exact search."""
    import faiss

    from precompute.stages.index import exact_neighbours, recall_at, without_own
    from precompute.stats.vectors import normalised
    from precompute.store import Store

    opened = Store.open(store)
    space = opened.spaces()[0]
    index = faiss.read_index(str(opened.index_path(space)))
    embeddings = opened.load_embeddings(space)
    rng = np.random.default_rng(1)
    picked = np.sort(rng.choice(len(embeddings), queries, replace=False))
    vectors = normalised(embeddings[picked])
    faiss.omp_set_num_threads(1)  # one query at a time, as a click makes it
    latency = [timed(lambda v=v: index.search(v.reshape(1, -1), 10), 1)[0] for v in vectors]
    faiss.omp_set_num_threads(0)
    exact = without_own(exact_neighbours(vectors, embeddings, 11), picked)
    _, found = index.search(vectors, 11)
    found = without_own(found, picked)
    n, dim = len(embeddings), embeddings.shape[1]
    return [
        row(f"kNN query k=10 ({type(index).__name__})", n, dim, statistics.median(latency),
            "ms", 5 if n >= 1_000_000 and dim == 512 else None),  # the goal is at ×512
        row("kNN recall@10 vs exact (own row left out)", n, dim, recall_at(found, exact),
            "ratio", 0.95, lower_is_better=False),
    ]
