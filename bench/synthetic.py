"""Synthetic stores for benchmarks: clustered embeddings, a clustered 2D map, several attributes
and thumbnails reused across ids, written through the store module so the explorer and every
stage read them like any other store.

    python bench/synthetic.py --rows 1000000 --dim 512 --out bench/stores/1m

The 2D map is generated with the clusters (a stand-in for a UMAP layout: what rendering, hover
and lasso are measured on); `--zero-embeddings` writes the embedding array as a sparse file of
zeros, for sizes where only the map is measured (10M × 512 would be 10 GB of real values).
`--layers N` adds N − 1 shallower layers before the penultimate one (for the layer strip),
each with its own map whose clusters overlap more the shallower it is, and zero embeddings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from precompute.config import ThumbnailConfig  # noqa: E402
from precompute.images import DecodeOptions  # noqa: E402
from precompute.stages.thumbs import make_thumbnail  # noqa: E402
from precompute.stages.x_sorted import write_x_sorted  # noqa: E402
from precompute.store import (  # noqa: E402
    CATEGORICAL,
    ID_COLUMN,
    NUMERIC,
    PATH_COLUMN,
    TEXT,
    THUMB_SHARD_ROWS,
    SpaceKey,
    Store,
    atomic_path,
    fingerprint,
)

SPACE = SpaceKey("synthetic/pretrained", "penultimate")
METHOD = "umap"
CHUNK = 250_000
SAMPLE_IMAGES = REPO / "sample_data" / "wikiart"


def make_store(root: Path, rows: int, dim: int, clusters: int = 64, seed: int = 0,
               zero_embeddings: bool = False, index: bool = True, layers: int = 1) -> Store:
    """Write a complete synthetic store of `rows` images at `root`."""
    rng = np.random.default_rng(seed)
    store = Store.create(root)
    labels = rng.integers(0, clusters, rows).astype(np.int32)
    _write_images(store, rows, labels, rng)
    _write_map(store, SPACE, labels, clusters, rng)
    write_x_sorted(store, SPACE, METHOD)
    _write_embeddings(store, SPACE, labels, clusters, dim, rng, zero_embeddings)
    for depth in range(1, layers):
        shallower = SpaceKey(SPACE.model, f"_blocks.{depth}")
        _write_map(store, shallower, labels, clusters, rng, mixing=float(layers - depth))
        write_x_sorted(store, shallower, METHOD)
        _write_embeddings(store, shallower, labels, clusters, dim, rng, zero=True, depth=depth)
    _write_thumbnails(store, rows)
    if index and not zero_embeddings:
        from precompute.config import IndexConfig
        from precompute.stages.index import run_index

        run_index(store, IndexConfig(), spaces=[SPACE])
    return store


def layered_store(rows: int, layers: int) -> Path:
    """bench/stores' synthetic store of `rows` images with `layers` layers (64-d, no index),
    made the first time it is asked for."""
    root = Path(__file__).resolve().parent / "stores" / f"{rows}x64-{layers}layers"
    if not ((root / "store.json").exists() and len(Store.open(root).spaces()) == layers):
        print(f"generating a synthetic store of {rows:,} rows, {layers} layers …", flush=True)
        make_store(root, rows, 64, zero_embeddings=True, index=False, layers=layers)
    return root


def _write_images(store: Store, rows: int, labels: np.ndarray, rng: np.random.Generator) -> None:
    paintings = pa.array(sorted(p.relative_to(SAMPLE_IMAGES).as_posix()
                                for p in SAMPLE_IMAGES.rglob("*.jpg")))
    groups = pa.array([f"group {i:02d}" for i in range(labels.max() + 1)])
    categories = pa.array([f"category {i}" for i in range(8)])
    colours = pa.array([f"colour {i}" for i in range(20)])
    colour = rng.integers(0, 20, rows).astype(np.int32)
    year = np.round(1900 + 120 * rng.random(rows))
    with atomic_path(store.images_path) as tmp:
        writer = None
        for start in range(0, rows, CHUNK * 8):  # strings a chunk at a time: 100M fit in memory
            part = slice(start, min(rows, start + CHUNK * 8))
            numbers = np.arange(part.start, part.stop, dtype=np.int64)
            table = pa.table({
                ID_COLUMN: hex_ids(numbers),
                PATH_COLUMN: pa.DictionaryArray.from_arrays(
                    pa.array((numbers % len(paintings)).astype(np.int32)), paintings),
                "group": pa.DictionaryArray.from_arrays(pa.array(labels[part]), groups),
                "category": pa.DictionaryArray.from_arrays(pa.array(labels[part] % 8),
                                                           categories),
                "colour": pa.DictionaryArray.from_arrays(pa.array(colour[part]), colours),
                "year": pa.array(year[part]),
                "title": pc.binary_join_element_wise("item ", pa.array(numbers).cast(pa.string()),
                                                     ""),
            })
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        writer.close()
    kinds = {"group": CATEGORICAL, "category": CATEGORICAL, "colour": CATEGORICAL,
             "year": NUMERIC, "title": TEXT}
    store.commit(
        store.images_path, {"synthetic": rows}, count=rows, rejected=0, reasons={},
        attributes=kinds, root=str(SAMPLE_IMAGES),
        fingerprint=fingerprint(hex_ids(np.arange(min(rows, 1000))).to_pylist()),
        decode=DecodeOptions().__dict__,
    )


def hex_ids(numbers: np.ndarray) -> pa.Array:
    """Each number as 16 lower-case hex digits (`%016x`), built from its bytes in numpy: a
    formatted string per row would take minutes at 100M rows."""
    raw = numbers.astype(">u8").view(np.uint8).reshape(-1, 8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    text = np.empty((len(numbers), 16), dtype=np.uint8)
    text[:, 0::2], text[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    return pa.array(text.view("S16").ravel()).cast(pa.string())


def _write_map(store: Store, space: SpaceKey, labels: np.ndarray, clusters: int,
               rng: np.random.Generator, mixing: float = 1.0) -> None:
    centres = rng.uniform(-8, 8, size=(clusters, 2)).astype(np.float32)
    spread = mixing * rng.uniform(0.2, 0.9, size=(clusters, 2)).astype(np.float32)
    path = store.projection_path(space, METHOD)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        coords = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                           shape=(len(labels), 2))
        for start in range(0, len(labels), CHUNK):
            part = labels[start:start + CHUNK]
            noise = rng.standard_normal((len(part), 2), dtype=np.float32)
            coords[start:start + CHUNK] = centres[part] + noise * spread[part]
        coords.flush()
        del coords
    store.commit(path, {"synthetic layout": True}, count=len(labels))


def _write_embeddings(store: Store, space: SpaceKey, labels: np.ndarray, clusters: int,
                      dim: int, rng: np.random.Generator, zero: bool,
                      depth: int | None = None) -> None:
    path = store.embeddings_path(space)
    path.parent.mkdir(parents=True, exist_ok=True)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                          shape=(len(labels), dim))
        if not zero:  # a sparse file of zeros otherwise: no disk, no time
            for start in range(0, len(labels), CHUNK):
                part = labels[start:start + CHUNK]
                noise = rng.standard_normal((len(part), dim), dtype=np.float32)
                array[start:start + CHUNK] = centres[part] + 0.8 * noise
        array.flush()
        del array
    store.commit(path, {"synthetic": True, "dim": dim, "zero": zero}, dim=dim,
                 count=len(labels), backbone="synthetic", weights="none",
                 **({} if depth is None else {"depth": depth}))


def _write_thumbnails(store: Store, rows: int) -> None:
    """One file of the sample paintings' thumbnails, shared by every shard through links."""
    paintings = sorted(SAMPLE_IMAGES.rglob("*.jpg"))
    blobs = [make_thumbnail(p, DecodeOptions(), ThumbnailConfig()) for p in paintings]
    lengths = np.array([len(b) for b in blobs], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    store.thumbs_dir.mkdir(parents=True, exist_ok=True)
    first_bin, _ = store.thumb_shard_paths(0)
    with atomic_path(first_bin) as tmp:
        tmp.write_bytes(b"".join(blobs))
    for shard in range((rows + THUMB_SHARD_ROWS - 1) // THUMB_SHARD_ROWS):
        bin_path, spans_path = store.thumb_shard_paths(shard)
        if shard:
            bin_path.unlink(missing_ok=True)
            os.link(first_bin, bin_path)
        index = np.arange(shard * THUMB_SHARD_ROWS,
                          min(rows, (shard + 1) * THUMB_SHARD_ROWS)) % len(blobs)
        store.write_array(spans_path, np.column_stack([starts[index], lengths[index]]))
    store.commit(store.thumbs_path, {"synthetic": rows}, count=rows, size=128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--out", required=True)
    parser.add_argument("--zero-embeddings", action="store_true")
    parser.add_argument("--no-index", action="store_true")
    parser.add_argument("--layers", type=int, default=1)
    args = parser.parse_args()
    began = time.perf_counter()
    make_store(Path(args.out), args.rows, args.dim, zero_embeddings=args.zero_embeddings,
               index=not args.no_index, layers=args.layers)
    print(f"wrote {args.rows:,} rows to {args.out} in {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
