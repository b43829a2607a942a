"""The viewer-only install: a fresh environment with `pip install .` (no extras, not editable)
has no torch and no Dask, describes a store, refuses to build one in one line, and serves a
store built elsewhere, with Query and Grad-CAM saying how to get the pipeline extra."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.explorer_page import ExplorerPage
from tests.browser.server import REPO, panel_server

ABSENT = ["torch", "torchvision", "dask", "distributed", "umap-learn", "opentsne",
          "scikit-learn"]


@pytest.fixture(scope="module")
def viewer_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtual environment holding the viewer install only."""
    venv = tmp_path_factory.mktemp("viewer-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # pip builds in the source folder; a copy of the package's files keeps the checkout clean
    source = shutil.copytree(REPO, venv / "source", ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "sample_data", "__pycache__", ".venv", "tests", "bench"))
    # --no-compile: byte-compiling every installed module took half of the install's time
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-compile", str(source)],
                   check=True, cwd=venv, timeout=900)
    return python


def test_the_viewer_install_has_no_pipeline_libraries(viewer_python):
    listed = subprocess.run([str(viewer_python), "-m", "pip", "list", "--format", "json"],
                            check=True, capture_output=True, text=True).stdout
    installed = {package["name"].lower() for package in json.loads(listed)}
    assert "feature-space-explorer" in installed and "faiss-cpu" in installed
    assert not installed & set(ABSENT)


def test_precompute_describes_a_store_and_refuses_to_build_one(viewer_python, built_store,
                                                               tmp_path):
    precompute = viewer_python.parent / "precompute"
    info = subprocess.run([str(precompute), "info", str(built_store)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["images"] == 66
    build = subprocess.run([str(precompute), "all", "--store", str(tmp_path / "new"),
                            "--config", str(built_store / "config.json")],
                           cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 2
    assert build.stderr.strip().splitlines() == [
        "precompute: error: precompute all needs the pipeline extra (torch is not installed): "
        "pip install 'feature-space-explorer[pipeline]'"]


def test_the_viewer_install_serves_a_store_built_elsewhere(viewer_python, built_store, page,
                                                           tmp_path):
    with panel_server(built_store, python=str(viewer_python), cwd=tmp_path) as url:
        explorer = ExplorerPage(page, url, built_store).open()
        assert (explorer.map_pixels().max(axis=2) - explorer.map_pixels().min(axis=2)
                > 40).sum() > 500  # the map is painted in its colours
        page.locator(".fse-why-result").get_by_text("Grad-CAM needs the pipeline extra").wait_for()
        page.get_by_text("Query an image").click()
        page.get_by_text("Querying an image needs the pipeline extra (torch is not installed)"
                         ).wait_for()
        assert "Traceback" not in url.log.read_text()
