"""Map trust scores: this project's one-pass neighbour preservation + trustworthiness against
scikit-learn's `trustworthiness` alone, on the same clustered points, taken in turn.

    python bench/map_trust.py                     # 2,000 and 10,000 points, 1,280-d
    python bench/map_trust.py --sizes 10000 --repeats 5

The two trustworthiness values must agree (to float32 rounding); the ratio of the times is
what decides whether our own pass is worth keeping (docs/benchmarks.md, "Map trust scores").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measures import Row, row  # noqa: E402
from precompute.stats.map_trust import map_trust  # noqa: E402
from precompute.stats.vectors import normalised  # noqa: E402

WIDTH = 1280  # efficientnet_lite0's penultimate layer


def clustered_points(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings in 20 clusters and a noisy 2D map of them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, WIDTH)) * 3
    vectors = (centres[rng.integers(0, 20, count)]
               + rng.standard_normal((count, WIDTH))).astype(np.float32)
    coords = normalised(vectors)[:, :2] * 5 + 0.3 * rng.standard_normal((count, 2))
    return vectors, coords.astype(np.float32)


def measure(count: int, repeats: int) -> list[Row]:
    """Seconds per map of both ways, interleaved, and their agreement."""
    from sklearn.manifold import trustworthiness

    vectors, coords = clustered_points(count)
    unit = normalised(vectors)
    ours, theirs = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        scores = map_trust(vectors, coords)
        ours.append(time.perf_counter() - began)
        began = time.perf_counter()
        reference = trustworthiness(unit, coords, n_neighbors=scores.neighbours)
        theirs.append(time.perf_counter() - began)
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    return [
        row("map trust scores, one pass (ours)", count, WIDTH, ours_s, "s"),
        row("sklearn trustworthiness alone", count, WIDTH, theirs_s, "s"),
        row("sklearn trustworthiness / ours", count, WIDTH, theirs_s / ours_s, "ratio"),
        row("trustworthiness difference to sklearn", count, WIDTH,
            abs(scores.trustworthiness - reference), "abs", goal=0.001),
    ]


def main() -> None:
    from bench.run import print_table, save_rows

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = [r for size in args.sizes.split(",") for r in measure(int(size), args.repeats)]
    print_table(rows)
    save_rows(rows)


if __name__ == "__main__":
    main()
