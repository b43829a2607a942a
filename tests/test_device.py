"""The CPU path keeps a batch's freed activation memory for the next batch."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

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


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_a_model_prepared_for_the_cpu_reuses_freed_activation_memory_without_page_faults():
    out = subprocess.run([sys.executable, "-c", FAULTS_OF_FIVE_BATCHES], capture_output=True,
                         text=True, check=True).stdout
    unprepared, prepared = map(int, out.split())
    pages_of_a_batch = 64 * 2**20 // 4096
    assert unprepared >= 4 * pages_of_a_batch  # each batch mapped and faulted in anew
    assert prepared < pages_of_a_batch // 4
