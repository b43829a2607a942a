"""Run the benchmarks, print a table and write bench/results.json (`make bench`).

    python bench/run.py                 # everything (about two hours on two cores)
    python bench/run.py --only explorer # one group: explorer, browser, knn, embed, project
    python bench/run.py --sizes 100000,1000000
    python bench/run.py --only knn --sizes 1000000 --dims 2048
    python bench/run.py --only project --sizes 1000000 --methods pca_umap

Synthetic stores are generated under bench/stores/ on first use (bench/synthetic.py). Results
and the command that made them are copied into docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measures import Row, explorer_measures, knn_measure  # noqa: E402
from bench.synthetic import make_store  # noqa: E402

STORES = REPO / "bench" / "stores"
SAMPLE_STORE = REPO / "sample_data" / "store"
RESULTS = REPO / "bench" / "results.json"
RENDER_GOALS = {1_000_000: 50, 10_000_000: 150}
GROUPS = ("explorer", "browser", "knn", "embed", "project")


def synthetic_store(rows: int, dim: int = 512) -> Path:
    """The synthetic store of `rows` images, generated when missing. Above 1M rows the
    embeddings are left as zeros (only the map is measured there) and no index is built."""
    root = STORES / f"{rows}x{dim}"
    if not (root / "thumbs" / "thumbs.json").exists():
        print(f"generating a synthetic store of {rows:,} × {dim} …", flush=True)
        large = rows > 1_000_000
        make_store(root, rows, dim, zero_embeddings=large, index=not large)
    return root


def run(groups: list[str], sizes: list[int], dims: list[int], methods: list[str]
        ) -> list[Row]:
    rows: list[Row] = []
    # every width up to 1M rows; above, the first only (its embeddings are zeros there)
    stores = [(size, dim) for size in sizes for dim in dims
              if dim == dims[0] or size <= 1_000_000]
    for group in groups:
        began = time.perf_counter()
        if group == "explorer":
            if SAMPLE_STORE.exists():
                rows += explorer_measures(SAMPLE_STORE, None)
            for size, dim in stores:
                rows += explorer_measures(synthetic_store(size, dim), RENDER_GOALS.get(size))
        elif group == "browser":
            from bench.browser_measures import browser_measures

            if SAMPLE_STORE.exists():
                rows += browser_measures(SAMPLE_STORE, 495, 1280)
            for size in [s for s in sizes if s <= 1_000_000]:
                rows += browser_measures(synthetic_store(size), size, 512)
        elif group == "knn":
            for size, dim in [(s, d) for s, d in stores if s <= 1_000_000]:
                rows += knn_measure(synthetic_store(size, dim))
        elif group == "embed":
            from bench.embedding import embedding_measures

            rows += embedding_measures()
        elif group == "project":
            from bench.projection import projection_measures

            for size in [s for s in sizes if s <= 1_000_000]:
                rows += projection_measures(size, 2048, methods)
        print(f"[{group}: {time.perf_counter() - began:.0f} s]", flush=True)
        print_table(rows)
    return rows


def print_table(rows: list[Row]) -> None:
    header = f"{'measure':<48} {'n':>11} {'dim':>5} {'value':>10} {'unit':<8} {'goal':>7}  met"
    print(header)
    print("-" * len(header))
    for r in rows:
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        goal = "" if r["goal"] is None else f"{r['goal']:g}"
        print(f"{r['measure']:<48} {r['n']:>11,} {r['dim'] or '':>5} {r['value']:>10.3f} "
              f"{r['unit']:<8} {goal:>7}  {met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=GROUPS, action="append")
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--dims", default="512,2048",
                        help="embedding widths of the synthetic stores the explorer and knn "
                             "groups measure (above 1M rows, the first only)")
    parser.add_argument("--methods", default="pca_umap,umap,pca_tsne",
                        help="projection methods of the 'project' group")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    dims = [int(d) for d in args.dims.split(",") if d]
    rows = run(args.only or list(GROUPS), sizes, dims, args.methods.split(","))
    save_rows(rows)
    print(f"\n{len(rows)} results → {RESULTS} ({platform.node()}, {platform.processor()})")


def save_rows(rows: list[Row]) -> None:
    """Write `rows` into bench/results.json, replacing earlier rows of the same measures."""
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    measured = {(r["measure"], r["n"], r["dim"]) for r in rows}
    kept = [r for r in previous if (r["measure"], r["n"], r["dim"]) not in measured]
    RESULTS.write_text(json.dumps(kept + rows, indent=2))


if __name__ == "__main__":
    main()
