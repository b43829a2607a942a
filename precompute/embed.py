"""Embed stage: one pass of a model over every accepted image, writing one array per layer.

The layers are `[embed] layers` with `stages` expanded (see layers.py); each array's sidecar
records the layer's depth, so the store lists a model's layers from shallow to deep.

The arrays grow in place as memory-mapped `.partial` files; after every few batches the rows
done are recorded, so an interrupted run resumes at the first unfinished batch. On completion
each array is renamed into place and its sidecar written, so a killed run never leaves an
embedding that looks complete.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from precompute.backbones import Backbone, load_backbone
from precompute.config import EmbedConfig, ModelConfig
from precompute.device import describe, mixed_precision, pick_device, prepare_model
from precompute.features import LayerTap
from precompute.image_dataset import ImageFileDataset
from precompute.images import DecodeOptions
from precompute.layers import resolve_layers
from precompute.store import PATH_COLUMN, SpaceKey, Store, jsonable, read_json, write_json

log = logging.getLogger(__name__)

FLOAT16_MAX = float(np.finfo(np.float16).max)


class ModelSource(Protocol):
    """Where the embedding network comes from: a pretrained backbone or a fine-tuned checkpoint."""

    key: str  # the model part of every SpaceKey it produces, e.g. "pretrained"

    def recipe(self) -> dict[str, Any]:
        """What identifies the network's weights (goes into every artifact's recipe)."""
        ...

    def load(self) -> Backbone:
        """Build the network."""
        ...


@dataclass
class PretrainedSource:
    """The configured backbone with its pretrained weights."""

    config: ModelConfig
    key: str = "pretrained"

    def recipe(self) -> dict[str, Any]:
        return {"model": asdict(self.config)}

    def load(self) -> Backbone:
        return load_backbone(self.config)


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
    store: Store, config: EmbedConfig, source: ModelSource, force: bool = False
) -> EmbedSummary:
    """Embed every accepted image with `source` at each configured layer."""
    images_meta = store.images_meta()
    base = embedding_recipe(store, source, config.dtype)
    # The model is needed even when nothing is left to do: `stages` names its blocks.
    backbone = source.load()
    depths = resolve_layers(backbone.model, config.layers, config.stages, backbone.input_size)
    spaces = [SpaceKey(source.key, layer) for layer in depths]
    todo = [
        s for s in spaces
        if force or not store.is_current(store.embeddings_path(s), {**base, "layer": s.layer})
    ]
    summary = EmbedSummary(source.key, [s.layer for s in spaces])
    if not todo:
        summary.skipped = True
        return summary

    device = pick_device(config.device)
    tap = prepare_model(LayerTap(backbone.model, [s.layer for s in todo]), device).eval()
    paths = [Path(images_meta["root"]) / p for p in store.read_images([PATH_COLUMN])[PATH_COLUMN]]
    dims = _layer_dims(tap, backbone, device)
    progress_recipe = {**base, "layers": [s.layer for s in todo], "dims": dims}
    start = 0 if force else _resume_point(store, source.key, todo, progress_recipe)
    arrays = _open_partials(store, todo, len(paths), dims, config.dtype, fresh=start == 0)

    dataset = ImageFileDataset(
        paths,
        backbone.eval_transform(),
        DecodeOptions(**images_meta["decode"]),
        rows=range(start, len(paths)),
        draft_size=2 * backbone.input_size,
    )
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if config.workers else None,
    )
    log.info(
        "embedding %d images with %s (%s, %s) on %s%s",
        len(paths), backbone.name, backbone.weights_id, tap.mode, describe(device),
        f", resuming at row {start}" if start else "",
    )
    began = time.perf_counter()
    done, last_saved = start, time.perf_counter()
    with torch.inference_mode(), tqdm(
        total=len(paths), initial=start, desc=f"embed {source.key}", unit="img"
    ) as bar:
        for images, rows in loader:
            images = images.to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with mixed_precision(device):
                features = tap(images)
            first, last = int(rows[0]), int(rows[-1]) + 1
            for space in todo:
                arrays[space][first:last] = storable(
                    features[space.layer].float().cpu().numpy(), config.dtype
                )
            done = last
            bar.update(last - first)
            if time.perf_counter() - last_saved >= config.progress_every_s:
                _save_progress(store, source.key, arrays, progress_recipe, done)
                last_saved = time.perf_counter()
    seconds = time.perf_counter() - began

    for array in arrays.values():
        array.flush()
    arrays.clear()  # drop the memory maps before the files are renamed
    for space in todo:
        path = store.embeddings_path(space)
        os.replace(store.partial_path(path), path)
        store.commit(
            path,
            {**base, "layer": space.layer},
            dim=dims[space.layer],
            count=len(paths),
            depth=depths[space.layer],
            backbone=backbone.name,
            weights=backbone.weights_id,
            device=describe(device),
            resumed_from=start,
        )
    store.embed_progress_path(source.key).unlink(missing_ok=True)
    summary.embedded, summary.resumed_from = len(paths) - start, start
    summary.seconds, summary.device, summary.dims = seconds, describe(device), dims
    return summary


def _layer_dims(tap: LayerTap, backbone: Backbone, device: torch.device) -> dict[str, int]:
    probe = torch.zeros(1, 3, backbone.input_size, backbone.input_size, device=device)
    with torch.inference_mode():
        return {layer: int(v.shape[1]) for layer, v in tap(probe).items()}


def _resume_point(
    store: Store, model: str, todo: list[SpaceKey], recipe: dict[str, Any]
) -> int:
    """Rows already embedded by an interrupted run with the same recipe, else 0."""
    progress = read_json(store.embed_progress_path(model))
    if not progress or progress.get("recipe") != jsonable(recipe):
        return 0
    partials = [store.partial_path(store.embeddings_path(s)) for s in todo]
    if not all(p.exists() for p in partials):
        return 0
    return int(progress["rows_done"])


def _open_partials(
    store: Store, todo: list[SpaceKey], rows: int, dims: dict[str, int], dtype: str, fresh: bool
) -> dict[SpaceKey, np.memmap]:
    arrays = {}
    for space in todo:
        partial = store.partial_path(store.embeddings_path(space))
        partial.parent.mkdir(parents=True, exist_ok=True)
        arrays[space] = np.lib.format.open_memmap(
            partial,
            mode="w+" if fresh else "r+",
            dtype=np.dtype(dtype),
            shape=(rows, dims[space.layer]),
        )
    return arrays


def _save_progress(
    store: Store, model: str, arrays: dict[SpaceKey, np.memmap], recipe: dict[str, Any], done: int
) -> None:
    for array in arrays.values():
        array.flush()
    write_json(store.embed_progress_path(model), {"recipe": recipe, "rows_done": done})
