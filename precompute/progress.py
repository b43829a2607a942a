"""A `precompute` run's stages, those finished and the one running, in the store's `build.json`.

A reader (the explorer, `precompute info`) tells from it a store still being built from a
finished one, or from one whose build stopped, and which stages are still to come. The file is
rewritten as each stage starts and ends. A run killed outright leaves it saying a stage is
running: on the machine that wrote it, the process id tells that it no longer is; read from
another machine, such a record counts as running.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields

from precompute.store import Store, now, read_json, write_json

RUNNING, FINISHED, STOPPED = "running", "finished", "stopped"


@dataclass
class BuildProgress:
    """One run's plan and progress: its stages in order, those finished and the one running."""

    stages: list[str]
    finished: list[str] = field(default_factory=list)
    running: str | None = None
    ended: bool = False
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    started: str = field(default_factory=now)
    updated: str = field(default_factory=now)

    @property
    def state(self) -> str:
        """`finished`, `running`, or `stopped` (ended early, or its process is gone)."""
        if self.ended:
            return FINISHED if len(self.finished) == len(self.stages) else STOPPED
        return RUNNING if self._process_alive() else STOPPED

    @property
    def left(self) -> list[str]:
        """The stages not finished yet, the running one first."""
        return self.stages[len(self.finished):]

    def _process_alive(self) -> bool:
        if self.host != socket.gethostname() or os.name != "posix":
            return True  # another machine's process, or no signal 0 to ask with
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        return True


FIELDS = [f.name for f in fields(BuildProgress)]


def read_progress(store: Store) -> BuildProgress | None:
    """The latest run's progress; None for a store built before runs recorded it, or for a
    record this version cannot read (written by another version, or edited by hand)."""
    record = read_json(store.build_path)
    try:
        return BuildProgress(**{name: record[name] for name in FIELDS if name in record})
    except (TypeError, KeyError):
        return None


@contextmanager
def recorded_build(store: Store, stages: list[str], record: bool = True
                   ) -> Iterator[BuildProgress | None]:
    """Record a run of `stages` in `build.json`: the caller marks each stage with `step`, and
    the run is marked ended however it leaves (an exception leaves it `stopped`). Without
    `record` (a torchrun process other than the main one) nothing is written: None."""
    if not record:
        yield None
        return
    progress = BuildProgress(list(stages))
    _write(store, progress)
    try:
        yield progress
    finally:
        progress.running = None
        progress.ended = True
        _write(store, progress)


@contextmanager
def step(store: Store, progress: BuildProgress | None, name: str) -> Iterator[None]:
    """Mark stage `name` running for the duration, then finished (unless it raised); nothing
    where `progress` is None (a torchrun process other than the main one)."""
    if progress is None:
        yield
        return
    progress.running = name
    _write(store, progress)
    yield
    progress.finished.append(name)
    progress.running = None
    _write(store, progress)


def _write(store: Store, progress: BuildProgress) -> None:
    progress.updated = now()
    write_json(store.build_path, asdict(progress))
