"""Child processes that die with their parent: a `kill -9` of a stage leaves no worker behind."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(*_: object) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux), and exit now if the
    parent is already gone. An `initializer` of process pools and a DataLoader
    `worker_init_fn` (which passes the worker's id, ignored here)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
