"""A store still being built: the page waits for the first map and reloads itself when it lands,
says which stages are still to come, works without the stages that have not run (a click's
neighbours without the index), and offers a reload once the build has finished."""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest

from precompute.pipeline import STAGES as PIPELINE_STAGES
from precompute.pipeline import stage_order
from precompute.progress import BuildProgress
from precompute.store import SpaceKey, Store, write_json
from tests.browser.explorer_page import FRAME_JS, ExplorerPage
from tests.browser.server import panel_server

pytestmark = pytest.mark.browser

PENULTIMATE = SpaceKey("efficientnet_lite0/pretrained", "penultimate")
STAGES = stage_order(list(PIPELINE_STAGES))  # what `precompute all` runs


def record_build(store: Path, pid: int, finished: list[str], ended: bool = False) -> None:
    """build.json as `precompute all` writes it, for a run by process `pid`."""
    progress = BuildProgress(STAGES, list(finished), None if ended else STAGES[len(finished)],
                             ended, pid, socket.gethostname())
    write_json(store / "build.json", asdict(progress))  # atomically, as the pipeline does


def embedded_only(built: Path, destination: Path) -> Path:
    """A copy of `built` as it is after ingest, embed and thumbs: no map, index or score."""
    shutil.copytree(built, destination, ignore=lambda folder, names: [
        name for name in names
        if name in ("projections", "index.faiss", "index.json", "clusters.parquet",
                    "clusters.json", "points.parquet", "points.json", "separability.parquet",
                    "separability.json", "analysis", "models", "quality", "splits",
                    "finetuned-style-head", "build.json")])
    return destination


def land(built: Path, store: Path, relative: str) -> None:
    """Copy one finished artifact (or folder) of `built` into `store`, as a stage would."""
    source, target = built / relative, store / relative
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def test_a_page_follows_a_store_while_it_is_built(built_store, tmp_path, page):
    store = embedded_only(built_store, tmp_path / "store")
    builder = subprocess.Popen(["sleep", "600"])  # stands for the running `precompute all`
    try:
        record_build(store, builder.pid, ["ingest", "embed", "thumbs"])
        with panel_server(store) as url:
            page.goto(url, wait_until="networkidle")
            page.get_by_text("The store is being built").wait_for()
            assert "to come: project, quality" in page.locator(".fse-build").inner_text()

            # the first map lands: the waiting page reloads itself onto the explorer
            maps = f"spaces/{PENULTIMATE}/projections"
            for suffix in (".npy", ".reducer.pkl", ".json"):  # its sidecar last, as written
                land(built_store, store, f"{maps}/pca{suffix}")
            page.locator(".fse-map canvas").first.wait_for(state="visible", timeout=30_000)
            banner = page.locator(".fse-build")
            banner.wait_for()
            assert "Still building" in banner.inner_text()
            assert page.locator(".fse-reload").is_hidden()

            # no index yet: a click's neighbours come from an exact search of the embeddings
            page.wait_for_function(f"() => window.Bokeh !== undefined && ({FRAME_JS})() !== null")
            ExplorerPage(page, url, store).click(0)
            page.locator(".fse-neighbours .fse-tile").first.wait_for(timeout=30_000)

            # the build finishes: the page offers the reload, which shows what landed
            for relative in ("spaces", "analysis", "models", "quality", "splits"):
                land(built_store, store, relative)
            record_build(store, builder.pid, STAGES, ended=True)
            reload = page.locator(".fse-reload button")
            reload.wait_for(state="visible", timeout=30_000)
            assert "The build has finished" in banner.inner_text()
            reload.click()
            page.locator(".fse-map canvas").first.wait_for(state="visible", timeout=30_000)
            page.locator(".fse-legend-value").first.wait_for()
            spaces = page.locator(".fse-space select option").all_text_contents()
            assert any("finetuned-style-head" in space for space in spaces)
            assert page.locator(".fse-build").count() == 0
    finally:
        builder.kill()
        builder.wait()


def test_a_build_that_stopped_says_how_to_finish_it(built_store, tmp_path, page):
    store = Path(shutil.copytree(built_store, tmp_path / "store"))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs: the build was killed
    record_build(store, gone.pid, ["ingest", "embed", "thumbs", "project"])
    assert Store.open(store).build_path.exists()
    with panel_server(store) as url:
        page.goto(url, wait_until="networkidle")
        banner = page.locator(".fse-build.fse-stopped")
        banner.wait_for()
        text = banner.inner_text()
        assert "The build stopped after 4 of 10 stages" in text
        assert f"precompute all --store {store}" in text
