"""How well the quality checks find known problems: a copy of a real dataset gets 30
near-duplicates (re-encoded at JPEG quality 50, resized to 2/3, cropped 10% off; ten of each)
and 10% of one attribute's labels flipped at random; the checks then run in every embedded
layer and are scored against that truth.

    python bench/quality_injection.py --dataset ../shared/datasets/wikiart_subset --flip style
    python bench/quality_injection.py --dataset ../shared/datasets/fashion_small \\
        --flip masterCategory

Near-duplicates: recall (copies whose group holds their original) and precision (flagged images
that are a copy or its original; and counting as well the dataset's own real duplicates,
`KNOWN_DUPLICATES` and any two files with the same bytes) at each similarity threshold, from
the similarity alone and with the pixel check of the quality stage. Label mistakes: precision and
recall among the top-ranked flags equal in number to the flipped labels. Rows go to
bench/results.json; the table is copied into docs/results.md by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measures import Row, row  # noqa: E402

# Real near-duplicates of the un-injected datasets, each confirmed by a look at the images
# (wikiart_subset 2026-12-02, fashion_small 2026-12-07): flagging them is right, so precision
# counts them as found, not as false alarms.
KNOWN_DUPLICATES = {"wikiart_subset": [
    ("Cubism/pyotr-konchalovsky_portrait-of-a-e-goncz-1918-1.jpg",
     "Fauvism/pyotr-konchalovsky_portrait-of-a-e-goncz-1918-1.jpg"),
    ("Cubism/pyotr-konchalovsky_portrait-of-actress-vizarova-1917.jpg",
     "Fauvism/pyotr-konchalovsky_portrait-of-actress-vizarova-1917.jpg"),
    ("Cubism/pyotr-konchalovsky_portrait-of-artist-leonard-mikhailovich-bunatyan-1920.jpg",
     "Fauvism/pyotr-konchalovsky_portrait-of-artist-leonard-mikhailovich-bunatyan-1920.jpg"),
    ("Minimalism/brice-marden_gulf-from-new-york-ten-lewison-16.jpg",
     "Minimalism/brice-marden_gulf-from-new-york-ten-lewison-16-1.jpg"),
    ("Minimalism/robert-ryman_untitled-1965.jpg", "Minimalism/robert-ryman_untitled-1965(1).jpg"),
    ("Ukiyo_e/kitagawa-utamaro_a-geisha-in-her-lover-s-room.jpg",
     "Ukiyo_e/kitagawa-utamaro_a-geisha-in-her-lover-s-room-1.jpg"),
    ("Ukiyo_e/utagawa-kuniyoshi_courtesan-and-her-maiko.jpg",
     "Ukiyo_e/utagawa-kuniyoshi_courtesan-and-her-maiko-1.jpg"),
], "fashion_small": [  # one photograph listed under two consecutive ids, re-encoded or rescaled
    ("13228.jpg", "13229.jpg"), ("13261.jpg", "13262.jpg"), ("18174.jpg", "18175.jpg"),
]}  # and in both sets, files with the same bytes (`same_bytes`)
IGNORED_COLUMNS = ("title", "id", "width", "height", "bytes")  # not attributes to check
COPIES_PER_KIND = 10
FLIP_SHARE = 0.10
THRESHOLDS = (0.80, 0.825, 0.85, 0.875, 0.90, 0.925, 0.95)
NEIGHBOURS = 10


def near_copy(image: Image.Image, kind: str) -> bytes:
    """The image re-encoded, resized or cropped, as JPEG bytes."""
    width, height = image.size
    if kind == "resized":
        image = image.resize((width * 2 // 3, height * 2 // 3), Image.Resampling.BICUBIC)
    elif kind == "cropped":
        image = image.crop((width // 20, height // 20, width - width // 20, height - height // 20))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=50 if kind == "re-encoded" else 85)
    return buffer.getvalue()


def inject(dataset: Path, work: Path, flip: str, seed: int = 0) -> tuple[Path, dict, dict]:
    """A copy of `dataset` with near-copies and flipped labels; returns its manifest, the
    copies (copy path → original path) and the flips (path → (true, given))."""
    rng = np.random.default_rng(seed)
    root = work / "images"
    if not root.exists():
        shutil.copytree(dataset, root)
    table = pd.read_csv(dataset / "manifest.csv", dtype="string", keep_default_na=False)
    copies = {}
    originals = rng.choice(len(table), 3 * COPIES_PER_KIND, replace=False)
    extra = []
    for number, index in enumerate(originals):
        kind = ("re-encoded", "resized", "cropped")[number // COPIES_PER_KIND]
        original = table.iloc[int(index)]
        name = f"injected/{kind}-{number}.jpg"
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(near_copy(Image.open(root / original["path"]).convert("RGB"),
                                            kind))
        extra.append({**original.to_dict(), "path": name})
        copies[name] = original["path"]
    table = pd.concat([table, pd.DataFrame(extra)], ignore_index=True)
    classes = sorted(set(table[flip]) - {""})
    flips = {}
    for index in rng.choice(len(table), int(FLIP_SHARE * len(table)), replace=False):
        true = table.at[int(index), flip]
        if not true:
            continue
        given = rng.choice([c for c in classes if c != true])
        table.at[int(index), flip] = given
        flips[table.at[int(index), "path"]] = (true, given)
    manifest = work / "manifest.csv"
    table.to_csv(manifest, index=False)
    return manifest, copies, flips


def same_bytes(root: Path, paths: pd.Series) -> set[str]:
    """Sample ids of the images whose file another image's file repeats byte for byte: real
    duplicates of the dataset, which need no look to be confirmed."""
    from precompute.store import sample_id

    digests = paths.map(lambda path: hashlib.sha256((root / path).read_bytes()).hexdigest())
    return {sample_id(path) for path in paths[digests.duplicated(keep=False)]}


def build(work: Path, manifest: Path) -> Path:
    """Ingest and embed (three stages and the penultimate layer) the injected copy."""
    from precompute.cli import main

    config = work / "config.toml"
    present = set(pd.read_csv(manifest, nrows=0).columns)
    ignored = [c for c in IGNORED_COLUMNS if c in present]
    config.write_text(f"""
[dataset]
root = "{(work / 'images').as_posix()}"
manifest = "{manifest.as_posix()}"
ignore_columns = {ignored!r}
[model]
backbone = "efficientnet_lite0"
[embed]
batch_size = 32
""", encoding="utf-8")
    store = work / "store"
    for stage in ("ingest", "embed"):
        assert main(["-q", stage, "--config", str(config), "--store", str(store)]) == 0
    return store


def layer_scores(store_root: Path, copies: dict, flips: dict, flip: str, label: str
                 ) -> list[Row]:
    import faiss

    from precompute.stages.quality import same_pixels
    from precompute.stats.quality_checks import (
        label_issues,
        near_duplicates,
        neighbour_probabilities,
        out_of_fold_probabilities,
        similar_pairs,
    )
    from precompute.stats.vectors import normalised
    from precompute.store import ID_COLUMN, PATH_COLUMN, Store, sample_id

    store = Store.open(store_root)
    table = store.read_images([ID_COLUMN, PATH_COLUMN, flip])
    ids = table[ID_COLUMN].to_numpy()
    truth = {sample_id(c): sample_id(o) for c, o in copies.items()}
    in_pairs = set(truth) | set(truth.values())
    known = {sample_id(f"images/{path}") for pair in KNOWN_DUPLICATES.get(label, [])
             for path in pair} | same_bytes(Path(store.images_meta()["root"]),
                                            table[PATH_COLUMN])
    flipped = {sample_id(p) for p in flips}
    labels = table[flip].astype(str).to_numpy()
    rows: list[Row] = []
    for space in store.spaces():
        vectors = normalised(store.load_embeddings(space))
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        similarities, neighbours = index.search(vectors, NEIGHBOURS + 1)
        similarities, neighbours = similarities[:, 1:], neighbours[:, 1:]
        paths = dict(zip(ids, table[PATH_COLUMN], strict=True))
        # the pixel check of a pair does not depend on the threshold: done once per layer
        candidates = similar_pairs(neighbours, similarities, min(THRESHOLDS))
        confirmed = same_pixels(store, candidates)
        for threshold in THRESHOLDS:
            for check, pairs in (("similarity", candidates), ("similarity+pixels", confirmed)):
                found = near_duplicates(ids, *(part[pairs[2] >= threshold] for part in pairs))
                group = dict(zip(found["sample_id"], found["group"], strict=True))
                recall = np.mean([c in group and group[c] == group.get(o)
                                  for c, o in truth.items()])
                name = f"{label} near-duplicates {space} @{threshold} {check}"
                rows.append(row(f"{name}: recall", len(ids), vectors.shape[1], recall, "share",
                                0.95, lower_is_better=False))
                for truth_name, true in (("injected", in_pairs),
                                         ("injected+real", in_pairs | known)):
                    precision = len(set(group) & true) / len(group) if group else 1.0
                    rows.append(row(f"{name}: precision ({truth_name})", len(ids),
                                    vectors.shape[1], precision, "share", 0.9,
                                    lower_is_better=False))
                unexplained = sorted(paths[s] for s in set(group) - in_pairs - known)
                if check != "similarity" and unexplained:
                    print(name, "flagged, neither injected nor known:", unexplained)
        sizes = pd.Series(labels).value_counts()
        keep = np.flatnonzero(np.isin(labels, sizes.index[sizes >= 5]))
        classes = sorted(set(labels[keep]))
        probe = out_of_fold_probabilities(vectors[keep], labels[keep], 5, 0)[0]
        votes = neighbour_probabilities(neighbours[keep], labels, classes)
        for method, probabilities in (("out_of_fold", probe), ("neighbours", votes),
                                      ("both", (probe + votes) / 2)):
            issues = label_issues(ids[keep], labels[keep], probabilities, classes, flip)
            top = issues.sort_values("score", ascending=False).head(len(flipped))
            hits = len(set(top["sample_id"]) & flipped)
            rows.append(row(f"{label} label mistakes {space} ({method}): precision@injected",
                            len(ids), vectors.shape[1], hits / max(1, len(top)), "share", 0.5,
                            lower_is_better=False))
            rows.append(row(f"{label} label mistakes {space} ({method}): recall@injected",
                            len(ids), vectors.shape[1], hits / len(flipped), "share", 0.7,
                            lower_is_better=False))
    return rows


def main() -> None:
    from bench.run import print_table, save_rows

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--flip", required=True, help="the attribute whose labels are flipped")
    parser.add_argument("--work", type=Path, help="working folder (default /tmp/quality-NAME)")
    args = parser.parse_args()
    work = args.work or Path("/tmp") / f"quality-{args.dataset.name}"
    work.mkdir(parents=True, exist_ok=True)
    manifest, copies, flips = inject(args.dataset, work, args.flip)
    store = build(work, manifest)
    rows = layer_scores(store, copies, flips, args.flip, args.dataset.name)
    print_table(rows)
    save_rows(rows)


if __name__ == "__main__":
    main()
