"""The CPU path: a batch's freed activation memory kept for the next, decoding beside the model."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from precompute.config import EmbedConfig, TrainConfig
from precompute.nn.image_dataset import loader_workers

FAULTS_OF_FIVE_BATCHES = """
import resource, torch
from precompute.nn.device import prepare_model

def faults_of_five_batches() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        activation = torch.ones(64 * 2**20 // 4)  # 64 MiB, above glibc's largest mmap threshold
        del activation
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

unprepared = faults_of_five_batches()
prepare_model(torch.nn.Linear(2, 2), torch.device("cpu"))
faults_of_five_batches()  # the first batch after takes its pages once
print(unprepared, faults_of_five_batches())
"""


def huge_pages_always() -> bool:
    """Whether every large mapping gets transparent huge pages (far fewer faults to count)."""
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return setting.exists() and "[always]" in setting.read_text()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
@pytest.mark.skipif(huge_pages_always(), reason="huge pages: a batch is a few dozen faults")
def test_a_model_prepared_for_the_cpu_reuses_freed_activation_memory_without_page_faults():
    out = subprocess.run([sys.executable, "-c", FAULTS_OF_FIVE_BATCHES], capture_output=True,
                         text=True, check=True).stdout
    unprepared, prepared = map(int, out.split())
    pages_of_a_batch = 64 * 2**20 // 4096
    assert unprepared >= 4 * pages_of_a_batch  # each batch mapped and faulted in anew
    assert prepared < pages_of_a_batch // 4


def test_embedding_and_training_decode_beside_the_model_on_the_cpu_and_in_workers_for_a_gpu():
    assert EmbedConfig().workers == TrainConfig().workers == "auto"
    assert loader_workers("auto", torch.device("cpu")) == 0
    assert loader_workers("auto", torch.device("cuda")) == min(8, os.cpu_count() or 1)
    assert loader_workers(3, torch.device("cpu")) == 3
