"""A torch Dataset over the store's accepted images, decoded the same way as at ingestion."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from precompute.errors import DatasetError
from precompute.images import DecodeOptions, ImageRejected, open_rgb

MAX_LOADER_WORKERS = 8  # loader processes a stage starts by itself, at most


def loader_workers(workers: int | Literal["auto"], device: torch.device) -> int:
    """A stage's `workers` setting as a number of DataLoader processes: `auto` is none on the
    CPU, where the model's own threads use every core (decoding in the stage's process was 1.2×
    faster for the embed stage and 1.4× for a training epoch than beside them in two workers on
    two cores), and one per core, at most `MAX_LOADER_WORKERS`, to feed an accelerator."""
    if workers != "auto":
        return int(workers)
    return 0 if device.type == "cpu" else min(MAX_LOADER_WORKERS, os.cpu_count() or 1)


class ImageFileDataset(Dataset):
    """Item i is `(transform(image i), i)` for the given rows of the store's images table. With
    `random_key` set (the training seed and epoch), a random transform draws from that key and
    the image's row alone: the same crops whichever process decodes the image, so the number
    of loader processes changes no result."""

    def __init__(
        self,
        paths: Sequence[Path],
        transform: Callable,
        options: DecodeOptions,
        rows: Sequence[int] | None = None,
        draft_size: int | None = None,
    ):
        self.paths = list(paths)
        self.rows = list(range(len(self.paths))) if rows is None else list(rows)
        self.transform = transform
        self.options = options
        self.draft_size = draft_size
        self.random_key: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.rows[index]
        path = self.paths[row]
        try:
            image = open_rgb(path, self.options, draft_size=self.draft_size)
        except ImageRejected as exc:
            raise DatasetError(
                f"{path} was usable at ingestion but now fails ({exc}); the dataset changed: "
                "re-run `precompute ingest --force` (finished work is kept)"
            ) from exc
        if self.random_key is None:
            return self.transform(image), row
        seed = np.random.SeedSequence((*self.random_key, row)).generate_state(1)[0]
        with torch.random.fork_rng(devices=[]):  # the process's own draws are left as they were
            torch.manual_seed(int(seed))
            return self.transform(image), row
