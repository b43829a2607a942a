"""Helpers for tests: small real image sets taken from sample_data and configs for them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import zip_longest
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE_IMAGES = REPO / "sample_data" / "wikiart"
PER_STYLE = 6  # 11 styles × 6 = 66 real paintings, at least two artists per style


def sample_paintings(per_style: int = PER_STYLE) -> list[Path]:
    """Paintings from sample_data, `per_style` from each style, alternating between artists."""
    chosen = []
    for style in sorted(p for p in SAMPLE_IMAGES.iterdir() if p.is_dir()):
        by_artist: dict[str, list[Path]] = {}
        for path in sorted(style.glob("*.jpg")):
            by_artist.setdefault(path.name.split("_")[0], []).append(path)
        alternating = [p for group in zip_longest(*by_artist.values()) for p in group if p]
        chosen.extend(alternating[:per_style])
    return chosen


def kill_when(arguments: list[str], ready: Callable[[], Any], timeout: float = 180) -> Any:
    """Run `python -m precompute.cli ARGUMENTS` and SIGKILL it as soon as `ready()` returns
    something true (or the run ends, or `timeout` seconds pass): a real interrupted run.
    Returns what `ready()` returned last, before the kill."""
    process = subprocess.Popen([sys.executable, "-m", "precompute.cli", *arguments],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    seen = ready()
    while not seen and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = ready()
    with contextlib.suppress(ProcessLookupError):  # it may have ended on its own meanwhile
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return seen


def copy_tree(paths: list[Path], destination: Path) -> Path:
    """Copy paintings into `destination/<Style>/<file>` and return `destination`."""
    for path in paths:
        target = destination / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return destination


def write_config(path: Path, root: Path, batch_size: int = 16, extra: str = "",
                 model: str = "", embed: str = "") -> Path:
    """A run config for a `Style/artist_title.jpg` tree with the offline backbone; `model`
    and `embed` are more lines for those sections, `extra` more sections."""
    path.write_text(
        f"""
[dataset]
root = "{root.as_posix()}"
levels = ["style"]
filename_pattern = '^(?P<artist>[^_]+)_(?P<title>.*?)(?:-(?P<year>\\d{{4}}))?$'

[model]
backbone = "efficientnet_lite0"
{model}

[embed]
batch_size = {batch_size}
workers = 2
progress_every_s = 0
{embed}

[thumbnails]
size = 96
{extra}
""",
        encoding="utf-8",
    )
    return path


# A head fine-tuned on style: the trained hidden layer is a 32-d feature space. Two test
# paintings per style (6 each), so its space can be scored on images it never trained on.
HEAD_TRAINING = """
[train]
target = "style"
test_fraction = 0.34
hidden = 32
epochs = 30
patience = 4
"""
