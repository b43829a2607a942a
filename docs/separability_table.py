"""Print a store's separability table as Markdown (the tables in docs/results.md).

    python docs/separability_table.py STORE [--model efficientnet_lite0/pretrained]

One table per metric: a row per feature space in store order (shallow to deep), a column per
attribute ("B | A" is B within each value of A), each cell
`value [low, high] · chance baseline [baseline_low, baseline_high]`.
"""

from __future__ import annotations

import argparse

from precompute.stats.separability import METRICS
from precompute.store import Store

NAMES = {
    "knn": "kNN accuracy (leave-one-out, k = {knn})",
    "probe": "linear-probe accuracy ({folds}-fold stratified cross-validation)",
    "silhouette": "silhouette (cosine)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--model", help="only the spaces of this model, e.g. "
                        "efficientnet_lite0/finetuned-style-head")
    args = parser.parse_args()
    store = Store.open(args.store)
    table = store.read_separability()
    meta = store.meta(store.separability_path())
    spaces = [s for s in meta["spaces"] if not args.model or s.rpartition("/")[0] == args.model]
    table = table.assign(column=[f"{a} \\| {g}" if g else a for a, g in
                                 zip(table["attribute"], table["given"], strict=True)])
    columns = list(dict.fromkeys(table["column"]))
    for metric in METRICS:
        print(f"\n**{NAMES[metric].format(**meta)}**\n")
        print("| layer | " + " | ".join(columns) + " |")
        print("|---|" + "---|" * len(columns))
        cells = table[table["metric"] == metric].set_index(["space", "column"])
        for space in spaces:
            line = []
            for column in columns:
                if (space, column) not in cells.index:
                    line.append("–")
                    continue
                c = cells.loc[(space, column)]
                line.append(
                    f"**{c.value:.2f}** [{c.low:.2f}, {c.high:.2f}] · "
                    f"{c.baseline:.2f} [{c.baseline_low:.2f}, {c.baseline_high:.2f}]"
                )
            print(f"| `{space}` | " + " | ".join(line) + " |")
    sizes = table.drop_duplicates("column").set_index("column")[["n", "classes", "strata"]]
    print("\nImages (n), classes and strata scored per column (the same in every layer):\n")
    print("| attribute | n | classes | strata |\n|---|---|---|---|")
    for column, c in sizes.iterrows():
        print(f"| {column} | {c.n} | {c.classes} | {c.strata} |")


if __name__ == "__main__":
    main()
