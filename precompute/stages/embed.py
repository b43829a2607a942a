"""Embed stage: one pass of a model over every accepted image, writing one array per layer.

The layers are `[embed] layers` with `stages` expanded (see layers.py); each array's sidecar
records the layer's depth and, for a block of the trunk, which one it is ("block 8 of 16"), so the
store lists a model's layers from shallow to deep and the explorer names their depth.

The arrays grow in place as memory-mapped `.partial` files; after every few batches the rows
done are recorded, so an interrupted run resumes at the first unfinished batch. On completion
each array is renamed into place and its sidecar written, so a killed run never leaves an
embedding that looks complete.

Under torchrun each rank embeds its own block of rows into its own part of each array (resumable
the same way); once every rank is done, one process merges the parts (see distributed.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from precompute.config import EmbedConfig
from precompute.errors import StoreError
from precompute.images import DecodeOptions
from precompute.nn.backbones import Backbone
from precompute.nn.device import describe, mixed_precision, pick_device, prepare_model
from precompute.nn.distributed import SINGLE, Shard, wait_for_all
from precompute.nn.features import LayerTap
from precompute.nn.image_dataset import ImageFileDataset, loader_workers
from precompute.nn.layers import LayerDepth, resolve_layers
from precompute.nn.sources import ModelSource
from precompute.processes import dies_with_this_process
from precompute.store import PATH_COLUMN, SpaceKey, Store, jsonable, read_json, write_json

log = logging.getLogger(__name__)

FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class EmbedSummary:
    model: str
    layers: list[str]
    embedded: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    device: str = ""
    skipped: bool = False
    dims: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        if self.skipped:
            return f"embed {self.model}: up to date ({', '.join(self.layers)})"
        rate = self.embedded / self.seconds if self.seconds else 0.0
        resumed = f", resumed after {self.resumed_from} rows" if self.resumed_from else ""
        dims = ", ".join(f"{layer} {dim}-d" for layer, dim in self.dims.items())
        return (
            f"embed {self.model}: {self.embedded} images in {self.seconds:.1f} s "
            f"({rate:.1f} images/s on {self.device}{resumed}); {dims}"
        )


def embedding_recipe(store: Store, source: ModelSource, dtype: str) -> dict[str, Any]:
    """What identifies a source's embeddings (each array's recipe adds its `layer`): the
    network, the images, their decoding and the storage dtype."""
    images_meta = store.images_meta()
    return {
        **source.recipe(),
        "images": images_meta["fingerprint"],
        "decode": images_meta["decode"],
        "dtype": dtype,
    }


def storable(values: np.ndarray, dtype: str) -> np.ndarray:
    """Activations in the store's dtype; float16 saturates instead of overflowing to inf."""
    if dtype == "float16":
        values = np.clip(values, -FLOAT16_MAX, FLOAT16_MAX)
    return values.astype(dtype, copy=False)


def run_embed(
    store: Store, config: EmbedConfig, source: ModelSource, force: bool = False,
    shard: Shard = SINGLE,
) -> EmbedSummary:
    """Embed every accepted image with `source` at each configured layer.

    A shard of several (torchrun) embeds only its block of rows into its own part of each
    array; `merge_embedding_parts` then joins the parts into the arrays a single process makes."""
    images_meta = store.images_meta()
    base = embedding_recipe(store, source, config.dtype)
    # The model is needed even when nothing is left to do: `stages` names its blocks.
    backbone = source.load()
    depths = resolve_layers(backbone.model, config.layers, config.stages, backbone.input_size)
    spaces = [SpaceKey(source.key, layer) for layer in depths]
    paths = [Path(images_meta["root"]) / p for p in store.read_images([PATH_COLUMN])[PATH_COLUMN]]
    block = shard.rows(len(paths))
    todo = [s for s in spaces if force or not _is_done(store, s, base, shard, len(paths))]
    summary = EmbedSummary(source.key, [s.layer for s in spaces])
    if not todo:
        summary.skipped = True
        return summary

    device = pick_device(config.device)
    tap = prepare_model(LayerTap(backbone.model, [s.layer for s in todo]), device).eval()
    dims = _layer_dims(tap, backbone, device)
    progress_path = store.embed_progress_path(source.key, shard.name if shard.sharded else "")
    progress_recipe = {**base, "layers": [s.layer for s in todo], "dims": dims,
                       "rows": [block.start, block.stop]}
    done = 0 if force else _resume_point(store, progress_path, todo, shard, progress_recipe)
    arrays = _open_partials(store, todo, shard, len(block), dims, config.dtype, fresh=done == 0)
    loader = _loader(paths, backbone, images_meta["decode"], range(block.start + done, block.stop),
                     config, device)
    of_shard = f" (rows {block.start}-{block.stop - 1}, rank {shard.name})" if shard.sharded else ""
    log.info(
        "embedding %d images%s with %s (%s, %s) on %s%s",
        len(block), of_shard, backbone.name, backbone.weights_id, tap.mode, describe(device),
        f", resuming after {done}" if done else "",
    )
    began = time.perf_counter()
    with tqdm(total=len(block), initial=done, desc=f"embed {source.key}{of_shard}", unit="img",
              position=shard.rank) as bar:
        _embed_batches(tap, loader, device, arrays, block.start, config, progress_path,
                       progress_recipe, bar)
    seconds = time.perf_counter() - began
    _commit_arrays(store, arrays, shard, base, len(paths), dims, depths, backbone=backbone.name,
                   weights=backbone.weights_id, device=describe(device), resumed_from=done)
    progress_path.unlink(missing_ok=True)
    summary.embedded, summary.resumed_from = len(block) - done, done
    summary.seconds, summary.device, summary.dims = seconds, describe(device), dims
    return summary


def _loader(
    paths: list[Path], backbone: Backbone, decode: dict[str, Any], rows: range,
    config: EmbedConfig, device: torch.device,
) -> DataLoader:
    """Batches of (image, row) of `rows`, decoded and transformed as `backbone` evaluates."""
    dataset = ImageFileDataset(
        paths,
        backbone.eval_transform(),
        DecodeOptions(**decode),
        rows=rows,
        draft_size=2 * backbone.input_size,
    )
    workers = loader_workers(config.workers, device)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        worker_init_fn=dies_with_this_process(),
    )


def _embed_batches(
    tap: LayerTap, loader: DataLoader, device: torch.device, arrays: dict[SpaceKey, np.memmap],
    start: int, config: EmbedConfig, progress_path: Path, progress_recipe: dict[str, Any],
    bar: tqdm,
) -> None:
    """Write each batch's activations into `arrays` (whose row 0 is image row `start`),
    recording the rows done every `progress_every_s` seconds."""
    last_saved = time.perf_counter()
    with torch.inference_mode():
        for images, rows in loader:
            images = images.to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with mixed_precision(device):
                features = tap(images)
            first, last = int(rows[0]) - start, int(rows[-1]) + 1 - start
            for space, array in arrays.items():
                array[first:last] = storable(
                    features[space.layer].float().cpu().numpy(), config.dtype
                )
            bar.update(last - first)
            if time.perf_counter() - last_saved >= config.progress_every_s:
                _save_progress(progress_path, arrays, progress_recipe, last)
                last_saved = time.perf_counter()


def _commit_arrays(
    store: Store, arrays: dict[SpaceKey, np.memmap], shard: Shard, base: dict[str, Any],
    total: int, dims: dict[str, int], depths: dict[str, LayerDepth], **info: Any,
) -> None:
    """Rename each finished `.partial` array into place and write its sidecar (dim, count,
    depth and its label, then `info`): only now does it look complete."""
    for array in arrays.values():
        array.flush()
    spaces = list(arrays)
    arrays.clear()  # drop the memory maps before the files are renamed
    for space in spaces:
        path = _output(store, space, shard)
        os.replace(store.partial_path(path), path)
        store.commit(
            path,
            _recipe(base, space, shard, total),
            dim=dims[space.layer],
            count=len(shard.rows(total)),
            depth=depths[space.layer].order,
            depth_label=depths[space.layer].label,
            **info,
        )


def embed_in_every_process(
    store: Store, config: EmbedConfig, source: ModelSource, force: bool, shard: Shard
) -> EmbedSummary:
    """`run_embed` in each of the processes of `shard`, then the merge by the first once all
    have written their parts (every process calls this; returns this process's summary)."""
    summary = run_embed(store, config, source, force=force, shard=shard)
    if shard.sharded:
        wait_for_all(shard)
        if shard.is_main:
            merge_embedding_parts(store, config, source, shard.world)
        wait_for_all(shard)  # the merged arrays exist before anyone reads them
    return summary


def merge_embedding_parts(
    store: Store, config: EmbedConfig, source: ModelSource, world: int
) -> list[SpaceKey]:
    """Join the parts `world` torchrun ranks wrote into each layer's one array, with the
    sidecar a single process would have written; returns the spaces merged.

    Run once, by one process, after every rank has finished its part."""
    base = embedding_recipe(store, source, config.dtype)
    total = len(store.read_images([PATH_COLUMN]))
    shards = [Shard(rank, world) for rank in range(world)]
    merged = []
    for layer_dir in sorted((store.root / "spaces" / source.key).glob("*/parts")):
        space = SpaceKey(source.key, layer_dir.parent.name)
        parts = [_output(store, space, s) for s in shards]
        if not store.is_current(parts[0], _recipe(base, space, shards[0], total)):
            continue  # parts of another recipe or another number of ranks
        missing = [str(p) for p, s in zip(parts, shards, strict=True)
                   if not store.is_current(p, _recipe(base, space, s, total))]
        if missing:
            raise StoreError(
                f"cannot merge {space}: parts {', '.join(missing)} are missing or incomplete; "
                "run the same torchrun command again to finish them"
            )
        info = {k: v for k, v in store.meta(parts[0]).items() if k not in ("recipe", "written")}
        path = store.embeddings_path(space)
        partial = store.partial_path(path)
        target = np.lib.format.open_memmap(
            partial, mode="w+", dtype=np.dtype(config.dtype), shape=(total, info["dim"])
        )
        for part, shard in zip(parts, shards, strict=True):
            block = shard.rows(total)
            target[block.start:block.stop] = np.load(part, mmap_mode="r")
        target.flush()
        del target
        os.replace(partial, path)
        store.commit(
            path,
            _recipe(base, space, SINGLE, total),
            **{**info, "count": total, "resumed_from": 0},
            ranks=world,
        )
        shutil.rmtree(layer_dir)
        merged.append(space)
        log.info("merged %d parts into %s (%d × %d)", world, path, total, info["dim"])
    return merged


def _is_done(
    store: Store, space: SpaceKey, base: dict[str, Any], shard: Shard, total: int
) -> bool:
    """Whether `space` is embedded already: the layer's array, or (after a restart under
    torchrun) this rank's part of it."""
    return any(
        store.is_current(_output(store, space, made_by), _recipe(base, space, made_by, total))
        for made_by in (SINGLE, shard)
    )


def _output(store: Store, space: SpaceKey, shard: Shard) -> Path:
    """The array a process writes: the layer's array, or its rank's part of it."""
    if shard.sharded:
        return store.embeddings_part_path(space, shard.name)
    return store.embeddings_path(space)


def _recipe(base: dict[str, Any], space: SpaceKey, shard: Shard, total: int) -> dict[str, Any]:
    """The recipe of `_output`: a part's also says which rows it holds."""
    recipe = {**base, "layer": space.layer}
    if shard.sharded:
        block = shard.rows(total)
        recipe["rows"] = [block.start, block.stop]
    return recipe


def _layer_dims(tap: LayerTap, backbone: Backbone, device: torch.device) -> dict[str, int]:
    probe = torch.zeros(1, 3, backbone.input_size, backbone.input_size, device=device)
    with torch.inference_mode():
        return {layer: int(v.shape[1]) for layer, v in tap(probe).items()}


def _resume_point(
    store: Store, progress_path: Path, todo: list[SpaceKey], shard: Shard, recipe: dict[str, Any]
) -> int:
    """Rows already embedded by an interrupted run with the same recipe, else 0."""
    progress = read_json(progress_path)
    if not progress or progress.get("recipe") != jsonable(recipe):
        return 0
    if not all(store.partial_path(_output(store, s, shard)).exists() for s in todo):
        return 0
    return int(progress["rows_done"])


def _open_partials(
    store: Store, todo: list[SpaceKey], shard: Shard, rows: int, dims: dict[str, int], dtype: str,
    fresh: bool,
) -> dict[SpaceKey, np.memmap]:
    arrays = {}
    for space in todo:
        partial = store.partial_path(_output(store, space, shard))
        partial.parent.mkdir(parents=True, exist_ok=True)
        arrays[space] = np.lib.format.open_memmap(
            partial,
            mode="w+" if fresh else "r+",
            dtype=np.dtype(dtype),
            shape=(rows, dims[space.layer]),
        )
    return arrays


def _save_progress(
    progress_path: Path, arrays: dict[SpaceKey, np.memmap], recipe: dict[str, Any], done: int
) -> None:
    for array in arrays.values():
        array.flush()
    write_json(progress_path, {"recipe": recipe, "rows_done": done})
