"""Embedding throughput: the real embed stage (decode + model, DataLoader workers) against the
model's forward pass alone on the same, already decoded, images.

The two are timed in turn, ROUNDS times, and each round's ratio compares passes seconds apart:
this machine's speed drifts (its memory bandwidth above all: the same forward pass has taken
0.25 s and 1.0 s a batch on different minutes of one day), so a ratio of two passes taken
minutes apart measured the drift as much as the stage."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Literal

import torch

from bench.measures import Row, row
from precompute.config import DatasetConfig, EmbedConfig, ModelConfig
from precompute.images import DecodeOptions, open_rgb
from precompute.nn.device import describe, mixed_precision, pick_device, prepare_model
from precompute.nn.features import LayerTap
from precompute.nn.sources import PretrainedSource
from precompute.stages.embed import run_embed
from precompute.stages.ingest import run_ingest
from precompute.store import PATH_COLUMN, Store

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "sample_data" / "wikiart"
ROUNDS = 3


def embedding_measures(backbone: str = "efficientnet_lite0", batch_size: int = 32,
                       workers: int | Literal["auto"] = "auto", rounds: int = ROUNDS,
                       images: Path = IMAGES, weights: str = "DEFAULT",
                       goal: float = 0.8) -> list[Row]:
    """Images per second end to end and model-only (medians of `rounds`), and the median of
    the rounds' ratios, on the `Style/…` tree at `images` (the sample paintings by default).
    `weights = "none"` times a torchvision architecture without its weights (a throughput
    figure needs no trained weights, and none download offline)."""
    model_config = ModelConfig(backbone=backbone, weights=weights)
    source = PretrainedSource(model_config)
    device = pick_device("auto")
    embed_config = EmbedConfig(batch_size=batch_size, workers=workers)
    end_to_end, model_only = [], []
    with tempfile.TemporaryDirectory() as folder:
        store = Store.create(folder)
        run_ingest(DatasetConfig(root=str(images), levels=["style"]), store)
        paths = [images / p for p in store.read_images([PATH_COLUMN])[PATH_COLUMN]]
        loaded = source.load()
        transform = loaded.eval_transform()
        decoded = torch.stack([transform(open_rgb(p, DecodeOptions())) for p in paths])
        tap = prepare_model(LayerTap(loaded.model, ["penultimate"]), device).eval()
        for _ in range(rounds):
            model_only.append(len(decoded) / _forward_seconds(tap, decoded, batch_size, device))
            summary = run_embed(store, embed_config, source, force=True)
            end_to_end.append(summary.embedded / summary.seconds)

    where = f"{backbone} on {describe(device)}"
    n = len(paths)
    ratios = [e / m for e, m in zip(end_to_end, model_only, strict=True)]
    return [
        row(f"embedding end to end ({where})", n, None, statistics.median(end_to_end), "img/s"),
        row(f"model forward only ({where})", n, None, statistics.median(model_only), "img/s"),
        row(f"embedding end to end / model only ({where})", n, None,
            statistics.median(ratios), "ratio", goal, lower_is_better=False),
    ]


def _forward_seconds(tap: LayerTap, decoded: torch.Tensor, batch_size: int,
                     device: torch.device) -> float:
    """Seconds for the forward passes over `decoded` in batches, nothing else."""
    began = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(decoded), batch_size):
            batch = decoded[start:start + batch_size].to(device)
            with mixed_precision(device):
                tap(batch)
    return time.perf_counter() - began
