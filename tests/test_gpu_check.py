"""The prepared GPU check runs here as a dry run: each step on the CPU or skipped with its
reason, exit status 0 (bench/gpu_check.sh; the whole dry run is in docs/benchmarks.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def gpu_check(*arguments: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "VENV": str(Path(sys.prefix))}
    return subprocess.run(["bash", "bench/gpu_check.sh", *arguments], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=300)


def cuda_present() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(cuda_present(), reason="a GPU is here: bench/gpu_check.sh runs for real")
def test_a_dry_run_falls_back_to_the_cpu_or_skips_with_the_reason():
    done = gpu_check("--dry-run", "--steps", "knn,umap")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.splitlines()[-2:]
    assert summary[0].startswith("knn") and "done in" in summary[0]
    assert summary[1].startswith("umap") and "skipped: cuML is not installed" in summary[1]
    assert "kNN recall@10 vs exact (torch float32 on cpu) (n=20000): 1.0" in done.stdout


@pytest.mark.skipif(cuda_present(), reason="a GPU is here: bench/gpu_check.sh runs for real")
def test_without_a_gpu_a_real_run_and_an_unknown_step_are_refused_in_one_line():
    real = gpu_check("--steps", "knn")
    assert real.returncode == 2 and "run with --dry-run" in real.stderr
    unknown = gpu_check("--dry-run", "--steps", "knn,warp")
    assert unknown.returncode == 2 and "unknown step(s) warp" in unknown.stderr
