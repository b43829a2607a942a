"""Child processes that die with their parent: a `kill -9` of a stage leaves no worker behind."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int, *_: object) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux), and exit now if the
    parent, process `parent`, is already gone (a kill between the fork and this call: this
    process's own parent would then be its reaper). Run in a new worker through
    `dies_with_this_process`."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def dies_with_this_process() -> Callable[..., None]:
    """An `initializer` of process pools and a DataLoader `worker_init_fn` (which passes the
    worker's id, ignored) that makes each worker die with this process."""
    return functools.partial(die_with_parent, os.getpid())
