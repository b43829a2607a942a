"""Embedding throughput: the real embed stage (decode + model, DataLoader workers) against the
model's forward pass alone on the same, already decoded, images."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from bench.measures import Row, row
from precompute.config import DatasetConfig, EmbedConfig, ModelConfig
from precompute.device import describe, mixed_precision, pick_device, prepare_model
from precompute.embed import PretrainedSource, run_embed
from precompute.features import LayerTap
from precompute.images import DecodeOptions, open_rgb
from precompute.ingest import run_ingest
from precompute.store import PATH_COLUMN, Store

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "sample_data" / "wikiart"


def embedding_measures(backbone: str = "efficientnet_lite0", batch_size: int = 32,
                       workers: int = 2) -> list[Row]:
    """Images per second end to end and model-only, and their ratio."""
    model_config = ModelConfig(backbone=backbone)
    with tempfile.TemporaryDirectory() as folder:
        store = Store.create(folder)
        run_ingest(DatasetConfig(root=str(IMAGES), levels=["style"]), store)
        summary = run_embed(store, EmbedConfig(batch_size=batch_size, workers=workers),
                            PretrainedSource(model_config))
        end_to_end = summary.embedded / summary.seconds
        paths = [IMAGES / p for p in store.read_images([PATH_COLUMN])[PATH_COLUMN]]

    source = PretrainedSource(model_config)
    backbone_loaded = source.load()
    device = pick_device("auto")
    transform = backbone_loaded.eval_transform()
    decoded = torch.stack([transform(open_rgb(p, DecodeOptions())) for p in paths])
    tap = prepare_model(LayerTap(backbone_loaded.model, ["penultimate"]), device).eval()
    began = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(decoded), batch_size):
            batch = decoded[start:start + batch_size].to(device)
            with mixed_precision(device):
                tap(batch)
    model_only = len(decoded) / (time.perf_counter() - began)
    where = f"{backbone} on {describe(device)}"
    n = len(paths)
    return [
        row(f"embedding end to end ({where})", n, None, end_to_end, "img/s"),
        row(f"model forward only ({where})", n, None, model_only, "img/s"),
        row("embedding end to end / model only", n, None, end_to_end / model_only, "ratio",
            0.8, lower_is_better=False),
    ]
