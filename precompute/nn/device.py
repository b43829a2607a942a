"""Choose the compute device at run time and the matching precision settings."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import platform
from collections.abc import Iterator

import torch

log = logging.getLogger(__name__)

# glibc returns every freed block above its mmap threshold (32 MiB at most) to the kernel at
# once, so a batch's activation tensors (51 MB each for Lite0 at batch 32) are mapped and
# faulted in anew on every forward pass. Measured on 2 cores: 21 img/s with half the time in the
# kernel, 66 img/s with freed blocks of up to this size kept in the heap for the next batch
# (docs/benchmarks.md, Embedding).
CPU_REUSED_BLOCK_BYTES = 1 << 30
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc's malloc.h)


def pick_device(name: str = "auto") -> torch.device:
    """`auto`: CUDA when present, else Apple MPS, else the CPU; other names are used as given."""
    if name != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            log.warning("device %s requested but CUDA is not available; using the CPU", name)
            return torch.device("cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for `device`: bf16 where supported, fp16 on older GPUs, none on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def mixed_precision(device: torch.device) -> Iterator[None]:
    """Autocast on CUDA; a no-op elsewhere (CPU autocast is slower on small machines)."""
    dtype = autocast_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to `device`: channels-last on CUDA (faster convolutions with tensor cores),
    and on the CPU this process's freed tensors kept for reuse (`reuse_freed_cpu_memory`)."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    elif device.type == "cpu":
        reuse_freed_cpu_memory()
    return model


def reuse_freed_cpu_memory() -> bool:
    """Keep this process's freed blocks of up to `CPU_REUSED_BLOCK_BYTES` in glibc's heap for
    the next batch instead of unmapping them; whether it applied (glibc on Linux only).

    It holds for the rest of the process (and processes it forks): the pipeline's, whose
    largest blocks are a batch's tensors. The explorer's server does not call it."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    refused = [name for name, parameter in (("M_MMAP_THRESHOLD", M_MMAP_THRESHOLD),
                                            ("M_TRIM_THRESHOLD", M_TRIM_THRESHOLD))
               if not mallopt(parameter, CPU_REUSED_BLOCK_BYTES)]
    if refused:  # older glibc caps the mmap threshold at 32 MiB
        log.info("glibc refused %s = %d: freed tensors go back to the kernel",
                 " and ".join(refused), CPU_REUSED_BLOCK_BYTES)
    return not refused


def describe(device: torch.device) -> str:
    """Human-readable device name for logs and sidecars."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
