"""Thumbs stage: a small JPEG of every accepted image, packed into shards the explorer reads by row.

Shards of `THUMB_SHARD_ROWS` images are written whole (bytes, then spans), so an interrupted
run keeps finished shards and redoes at most one.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from precompute.config import ThumbnailConfig
from precompute.images import DecodeOptions, ImageRejected, open_rgb
from precompute.processes import dies_with_this_process
from precompute.store import (
    PATH_COLUMN,
    THUMB_SHARD_ROWS,
    Store,
    atomic_path,
    jsonable,
    read_json,
    write_json,
)

log = logging.getLogger(__name__)


@dataclass
class ThumbsSummary:
    count: int
    made: int

    def line(self) -> str:
        if not self.made:
            return f"thumbs: up to date ({self.count} thumbnails)"
        return f"thumbs: {self.made} made, {self.count} in the store"


def make_thumbnail(path: Path, options: DecodeOptions, config: ThumbnailConfig) -> bytes:
    """JPEG bytes of `path` with its longest side at most `config.size` pixels."""
    try:
        image = open_rgb(path, options, draft_size=config.size)
    except ImageRejected:  # the file changed since ingestion: keep the row, show a placeholder
        image = Image.new("RGB", (config.size, config.size), (200, 200, 200))
    image.thumbnail((config.size, config.size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=config.quality, optimize=True)
    return buffer.getvalue()


def run_thumbs(
    store: Store, config: ThumbnailConfig, workers: int = 0, force: bool = False
) -> ThumbsSummary:
    """Write every missing shard of thumbnails."""
    meta = store.images_meta()
    recipe = {
        "thumbnails": asdict(config), "images": meta["fingerprint"], "decode": meta["decode"],
        "layout": "spans",
    }
    if not force and store.is_current(store.thumbs_path, recipe):
        return ThumbsSummary(meta["count"], 0)
    # Shards from another recipe must go before new ones are written beside them.
    started = store.thumbs_dir / "recipe.json"
    if force or read_json(started) != jsonable(recipe):
        shutil.rmtree(store.thumbs_dir, ignore_errors=True)
        write_json(started, recipe)

    root = Path(meta["root"])
    paths = [root / p for p in store.read_images([PATH_COLUMN])[PATH_COLUMN]]
    options = DecodeOptions(**meta["decode"])
    shards = range((len(paths) + THUMB_SHARD_ROWS - 1) // THUMB_SHARD_ROWS)
    todo = [s for s in shards if not store.thumb_shard_paths(s)[1].exists()]
    made = 0
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                             initializer=dies_with_this_process()) as pool, tqdm(
        total=len(paths), initial=len(paths) - _rows_in(todo, len(paths)),
        desc="thumbnails", unit="img",
    ) as bar:
        for shard in todo:
            rows = range(shard * THUMB_SHARD_ROWS, min(len(paths), (shard + 1) * THUMB_SHARD_ROWS))
            jobs = [(paths[r], options, config) for r in rows]
            blobs = []
            for blob in pool.map(_thumbnail_job, jobs, chunksize=32):
                blobs.append(blob)
                bar.update()
            _write_shard(store, shard, blobs)
            made += len(blobs)
    store.commit(store.thumbs_path, recipe, count=len(paths), size=config.size)
    return ThumbsSummary(len(paths), made)


def _thumbnail_job(job: tuple[Path, DecodeOptions, ThumbnailConfig]) -> bytes:
    return make_thumbnail(*job)


def _rows_in(shards: list[int], total: int) -> int:
    return sum(min(total, (s + 1) * THUMB_SHARD_ROWS) - s * THUMB_SHARD_ROWS for s in shards)


def _write_shard(store: Store, shard: int, blobs: list[bytes]) -> None:
    """Bytes first, then the spans that make the shard count as written. Identical thumbnails
    (copies of one image) are written once and share their span."""
    bin_path, spans_path = store.thumb_shard_paths(shard)
    starts: dict[bytes, int] = {}  # each distinct thumbnail's offset, in writing order
    end = 0
    for blob in blobs:
        if blob not in starts:
            starts[blob], end = end, end + len(blob)
    with atomic_path(bin_path) as tmp:
        tmp.write_bytes(b"".join(starts))
    spans = [(starts[blob], len(blob)) for blob in blobs]
    store.write_array(spans_path, np.array(spans, dtype=np.int64).reshape(-1, 2))
