"""`precompute export STORE --format FORMAT --out FOLDER`: a store's maps in the files other
embedding tools open.

- `parquet`: one table per space (`<backbone>__<run>__<layer>.parquet`): sample_id, image_path,
  the attributes, `<method>_x`/`_y` of every map, cluster, and the embedding as a list column
  `vector`; Apple's Embedding Atlas opens it (`embedding-atlas FILE --x umap_x --y umap_y
  --vector vector`) and DuckDB reads it.
- `csv`: the same per space without the vector.
- `projector`: the TensorFlow Embedding Projector's files: one `vectors-<space>.tsv` per space,
  one `metadata.tsv` (header row; attributes and a `cluster <space>` column per space) and
  `sprite.png` of the thumbnails for all of them, and
  `projector_config.json` listing each space (projector.tensorflow.org → Load, or the
  standalone projector's `?config=`).

Rows keep the order of images.parquet; `sample` exports a seeded random subset. Needs only the
viewer install.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from precompute.errors import ConfigError
from precompute.store import HEIGHT_COLUMN, ID_COLUMN, WIDTH_COLUMN, SpaceKey, Store

FORMATS = ("parquet", "csv", "projector")
VECTOR_COLUMN = "vector"
# The Embedding Projector runs t-SNE on at most 10,000 points and takes a sprite of at most
# 8192 × 8192 px; above this many images the export asks for a sample.
PROJECTOR_MAX_IMAGES = 10_000
SPRITE_MAX_PX = 8192
SPRITE_CELL_MAX_PX = 64  # the projector draws sprites small; 128 px made 15 MB for 495 images
SAMPLE_SEED = 0


@dataclass
class ExportSummary:
    """What an export wrote."""

    format: str
    files: list[Path]
    images: int
    spaces: int

    def line(self) -> str:
        return (f"export: {self.images} images × {self.spaces} spaces as {self.format}: "
                f"{len(self.files)} files in {self.files[0].parent if self.files else '-'}")


def export_store(store: Store, format: str, out: Path, spaces: list[str] | None = None,
                 sample: int | None = None) -> ExportSummary:
    """Write `store`'s spaces (all, or those named) in `format` into the folder `out`."""
    if format not in FORMATS:
        raise ConfigError(f"export format {format!r} is unknown; use one of {', '.join(FORMATS)}")
    keys = _chosen_spaces(store, spaces)
    count = len(store.read_images([ID_COLUMN]))
    for key in keys:  # every space checked before any file is written
        _check_points(store, key, count)
    rows = _chosen_rows(count, sample)
    if format == "projector" and len(rows) > PROJECTOR_MAX_IMAGES:
        raise ConfigError(
            f"{store.root} holds {len(rows):,} images; the Embedding Projector export takes at "
            f"most {PROJECTOR_MAX_IMAGES:,} (the projector runs t-SNE on 10,000 points and "
            f"takes a sprite of at most {SPRITE_MAX_PX} × {SPRITE_MAX_PX} px): pass "
            f"--sample {PROJECTOR_MAX_IMAGES} for a seeded random sample")
    out.mkdir(parents=True, exist_ok=True)
    images = store.read_images().iloc[rows].reset_index(drop=True)
    if format == "projector":
        files = _write_projector(store, keys, images, rows, out)
    else:
        files = [_write_table(store, key, images, rows, out, format) for key in keys]
    return ExportSummary(format, files, len(rows), len(keys))


def file_stem(space: SpaceKey) -> str:
    """A space's name as a file name: `efficientnet_lite0__pretrained__penultimate`."""
    return str(space).replace("/", "__")


def space_table(store: Store, space: SpaceKey, images: pd.DataFrame,
                rows: np.ndarray) -> pd.DataFrame:
    """The images (already cut to `rows`) with the space's map coordinates and clusters."""
    path = store.points_path(space)
    points = pd.read_parquet(path)
    if not points[ID_COLUMN].iloc[rows].reset_index(drop=True).equals(images[ID_COLUMN]):
        raise ConfigError(f"{path} is out of date; run `precompute "
                          f"project --store {store.root}` before exporting")
    coordinates = points.iloc[rows].drop(columns=[ID_COLUMN]).reset_index(drop=True)
    clash = sorted(set(images.columns) & (set(coordinates.columns) | {VECTOR_COLUMN}))
    if clash:
        raise ConfigError(f"attribute(s) {', '.join(clash)} of {store.root} have the names of "
                          "the export's own columns (map coordinates, cluster, vector); rename "
                          "them in the dataset, or leave them out with [dataset] ignore_columns")
    return pd.concat([images, coordinates], axis=1)


def _check_points(store: Store, space: SpaceKey, count: int) -> None:
    """Refuse a space whose points.parquet is missing or not of the store's images."""
    path = store.points_path(space)
    if not path.exists():
        raise ConfigError(f"{store.root} has no maps of {space} yet; run `precompute project "
                          f"--store {store.root}` before exporting")
    if pq.ParquetFile(path).metadata.num_rows != count:
        raise ConfigError(f"{path} is out of date; run `precompute project --store "
                          f"{store.root}` before exporting")


def _write_table(store: Store, space: SpaceKey, images: pd.DataFrame, rows: np.ndarray,
                 out: Path, format: str) -> Path:
    table = space_table(store, space, images, rows)
    path = out / f"{file_stem(space)}.{format}"
    if format == "csv":
        table.to_csv(path, index=False)
        return path
    vectors = np.asarray(store.load_embeddings(space)[rows], dtype=np.float32)
    arrow = pa.Table.from_pandas(table, preserve_index=False).append_column(
        VECTOR_COLUMN, pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()),
                                                         vectors.shape[1]))
    pq.write_table(arrow, path)
    return path


def _write_projector(store: Store, spaces: list[SpaceKey], images: pd.DataFrame,
                     rows: np.ndarray, out: Path) -> list[Path]:
    metadata = out / "metadata.tsv"
    clusters = {f"cluster {space}": store.read_clusters(space)["cluster"].iloc[rows].to_numpy()
                for space in spaces if store.meta(store.clusters_path(space))}
    table = images.drop(columns=[WIDTH_COLUMN, HEIGHT_COLUMN]).assign(**clusters)
    _tsv_safe(table).to_csv(metadata, sep="\t", index=False)
    sprite, cell = out / "sprite.png", _sprite_cell(len(rows))
    _sprite(store, rows, cell).save(sprite, optimize=True)
    embeddings, files = [], [metadata, sprite]
    for space in spaces:
        vectors = np.asarray(store.load_embeddings(space)[rows], dtype=np.float32)
        path = out / f"vectors-{file_stem(space)}.tsv"
        np.savetxt(path, vectors, fmt="%.6g", delimiter="\t")
        files.append(path)
        embeddings.append({
            "tensorName": str(space), "tensorShape": list(vectors.shape),
            "tensorPath": path.name, "metadataPath": metadata.name,
            "sprite": {"imagePath": sprite.name, "singleImageDim": [cell, cell]},
        })
    config = out / "projector_config.json"
    config.write_text(json.dumps({"embeddings": embeddings}, indent=2), encoding="utf-8")
    return [*files, config]


def _sprite_cell(count: int) -> int:
    """The side of one thumbnail in a square sprite of `count` that fits the projector."""
    return max(1, min(SPRITE_CELL_MAX_PX, SPRITE_MAX_PX // math.ceil(math.sqrt(max(count, 1)))))


def _sprite(store: Store, rows: np.ndarray, cell: int) -> Image.Image:
    """The thumbnails of `rows` in row-major order on a square grid, each centred in its cell;
    the projector reads image i from cell i."""
    side = math.ceil(math.sqrt(max(len(rows), 1)))
    sprite = Image.new("RGB", (side * cell, side * cell), "white")
    for position, row in enumerate(rows):
        with Image.open(BytesIO(store.read_thumbnail(int(row)))) as thumbnail:
            tile = thumbnail.convert("RGB")
            tile.thumbnail((cell, cell))
            top, left = divmod(position, side)
            sprite.paste(tile, (left * cell + (cell - tile.width) // 2,
                                top * cell + (cell - tile.height) // 2))
    return sprite


def _tsv_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Text without the tabs and line breaks that would shift the projector's columns."""
    text = table.astype("string").fillna("")
    return text.apply(lambda column: column.str.replace(r"[\t\r\n]+", " ", regex=True))


def _chosen_spaces(store: Store, names: list[str] | None) -> list[SpaceKey]:
    spaces = store.spaces()
    if not names:
        return spaces
    known = {str(space): space for space in spaces}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"--space {', '.join(unknown)} is not in {store.root}; its spaces: "
                          f"{', '.join(known)}")
    return [known[name] for name in names]


def _chosen_rows(count: int, sample: int | None) -> np.ndarray:
    """Every row, or a seeded random `sample` of them in store order."""
    if sample is None or sample >= count:
        return np.arange(count)
    if sample < 1:
        raise ConfigError(f"--sample {sample}: give a number of images of at least 1")
    chosen = np.random.default_rng(SAMPLE_SEED).choice(count, size=sample, replace=False)
    return np.sort(chosen)

