"""A new dataset, from the command to its first map in the browser, and to the full build.

    python bench/first_map.py [--images 1000] [--dataset ../shared/datasets/fashion_small]
    python bench/first_map.py --first-map-only    # stop the build once the map is painted

A `panel serve` of the store's folder is started first, as a user would in a second terminal,
and a headless Chromium opens it (the page says the store is not built yet and reloads itself
once a map has landed). Then the clock starts with `precompute all` on the first `--images`
rows of the dataset's manifest, with the default settings and the offline backbone. Measured:
seconds from the command to the first painted map on that page, and to the end of the build,
with the build's stage table. Rows go into bench/results.json ("first map of a new dataset",
goal 60 s; "full build of a new dataset", goal 120 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from bench.measures import Row, row  # noqa: E402
from explorer.data import store_ready  # noqa: E402
from tests.browser.explorer_page import MAP_PAINT_WATCH_JS  # noqa: E402
from tests.browser.server import chromium, panel_server  # noqa: E402

DATASET = REPO.parent / "shared" / "datasets" / "fashion_small"
BUILD_LIMIT_S = 1_800


def write_dataset(folder: Path, dataset: Path, images: int) -> Path:
    """A config for the first `images` rows of `dataset`'s manifest, all else default."""
    manifest = pd.read_csv(dataset / "manifest.csv", dtype=str).head(images)
    manifest.to_csv(folder / "manifest.csv", index=False)
    config = folder / "config.toml"
    config.write_text(f"""
[dataset]
root = "{dataset.resolve().as_posix()}"
manifest = "{(folder / 'manifest.csv').as_posix()}"
ignore_columns = ["id", "width", "height", "bytes"]

[model]
backbone = "efficientnet_lite0"
""", encoding="utf-8")
    return config


def first_map_and_build(dataset: Path, images: int, whole: bool = True
                        ) -> tuple[list[Row], str]:
    """Seconds to the first painted map and, if `whole`, to the end of `precompute all`; the
    stage table."""
    with tempfile.TemporaryDirectory(prefix="first-map-") as folder:
        config = write_dataset(Path(folder), dataset, images)
        store = Path(folder) / "store"
        with panel_server(store) as url, chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(MAP_PAINT_WATCH_JS)  # on every load, the reloads included
            page.goto(url, wait_until="networkidle")
            log = Path(folder) / "build.log"
            began = time.monotonic()
            with open(log, "w") as output:
                build = subprocess.Popen(
                    [sys.executable, "-m", "precompute.cli", "all", "--config", str(config),
                     "--store", str(store)], stdout=output, stderr=subprocess.STDOUT,
                    cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
            try:
                first_map = painted_after(page, began, build, store)
                print(f"first map painted after {first_map:.1f} s", flush=True)
                if not whole:
                    return [row("first map of a new dataset", images, None, first_map, "s",
                                60)], ""
                build.wait(timeout=BUILD_LIMIT_S)
                built = time.monotonic() - began
            finally:
                build.kill()  # (a no-op once it has finished)
                build.wait()
            if build.returncode != 0:
                raise RuntimeError(f"precompute all failed:\n{log.read_text()[-3000:]}")
        table = log.read_text().split("\nstage ", 1)[-1]
    return [
        row("first map of a new dataset", images, None, first_map, "s", 60),
        row("full build of a new dataset", images, None, built, "s", 120),
    ], "stage " + table


def painted_after(page, began: float, build: subprocess.Popen, store: Path) -> float:
    """Seconds from `began` until the page shows a painted map (it reloads itself when the
    first map lands); prints when the map landed in the store."""
    landed = None
    while time.monotonic() - began < BUILD_LIMIT_S:
        if landed is None and store_ready(store):
            landed = time.monotonic() - began
            print(f"first map in the store after {landed:.1f} s", flush=True)
        try:
            if page.evaluate("() => window.fseMapPainted || null"):
                return time.monotonic() - began
        except Exception:  # noqa: BLE001 - the page is reloading
            pass
        if build.poll() not in (None, 0):
            raise RuntimeError("the build failed before a map was painted")
        time.sleep(0.2)
    raise TimeoutError("no map painted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--first-map-only", action="store_true",
                        help="stop the build once the first map is painted")
    args = parser.parse_args()
    rows, stages = first_map_and_build(args.dataset, args.images, not args.first_map_only)
    print(stages)
    for result in rows:
        print(f"{result['measure']}: {result['value']} {result['unit']} (goal {result['goal']}: "
              f"{'met' if result['met'] else 'not met'})")
    from bench.run import save_rows

    save_rows(rows)


if __name__ == "__main__":
    main()
