"""A `kill -9` of a build leaves no worker process behind, and a build killed in the project
stage resumes without redoing the maps it had finished."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from precompute.cli import main
from precompute.info import describe_store
from precompute.store import Store, sidecar_path
from tests.helpers import kill_when, write_config


def processes_naming(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line contains `marker`: a run and the workers
    it forked, which inherit its command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in command and state != "Z":
            found.append(int(entry.name))
    return found


def kill_while_workers_run(arguments: list[str], marker: str) -> list[int]:
    """SIGKILL `precompute ARGUMENTS` as soon as it has forked workers; return their ids."""
    def workers() -> list[int]:
        running = processes_naming(marker)
        return running if len(running) > 1 else []

    return kill_when(arguments, workers, timeout=240)


def many_paintings(tree: Path, destination: Path, copies: int = 10) -> Path:
    """The tree's paintings `copies` times over, as hard links: ingest validates 66 images in
    about 50 ms, too soon for its workers to be seen and killed on a quiet machine."""
    for painting in tree.glob("*/*.jpg"):
        (destination / painting.parent.name).mkdir(parents=True, exist_ok=True)
        for copy in range(copies):
            target = destination / painting.parent.name / f"{painting.stem}-copy{copy}.jpg"
            try:
                os.link(painting, target)
            except OSError:  # another file system
                shutil.copy(painting, target)
    return destination


def test_workers_die_with_a_killed_build(small_tree, tmp_path):
    tree = many_paintings(small_tree, tmp_path / "paintings")
    config = write_config(tmp_path / "config.toml", tree, batch_size=2)
    for stage, store in (("ingest", "store-ingest"), ("embed", "store-embed")):
        store_dir = tmp_path / store
        if stage == "embed":
            assert main(["-q", "ingest", "--config", str(config), "--store", str(store_dir)]) == 0
        arguments = ["-q", stage, "--config", str(config), "--store", str(store_dir)]
        workers = kill_while_workers_run(arguments, str(store_dir))
        assert len(workers) > 1, f"{stage}: no worker process was seen to kill"
        time.sleep(2)
        assert processes_naming(str(store_dir)) == [], f"{stage}: workers outlived the run"


def test_a_build_killed_in_the_project_stage_keeps_its_finished_maps(built_store, small_tree,
                                                                     tmp_path):
    config = write_config(tmp_path / "config.toml", small_tree,
                          extra='[projection]\nmethods = ["pca", "tsne", "umap"]\n')
    store_dir = tmp_path / "store"
    for stage in ("ingest", "embed"):
        assert main(["-q", stage, "--config", str(config), "--store", str(store_dir)]) == 0
    store = Store.open(store_dir)
    [first, *_] = store.spaces()
    pca = store.projection_path(first, "pca")
    # killed once the map is complete (its sidecar written), not between its array and sidecar
    kill_when(["-q", "project", "--store", str(store_dir)], sidecar_path(pca).exists,
              timeout=240)
    assert pca.exists(), "the run should have been killed after its first map"
    assert not all(store.projection_path(s, "umap").exists() for s in store.spaces())
    made = pca.stat().st_mtime_ns
    build = describe_store(store)["build"]  # its record still says running: its process is gone
    assert (build["state"], build["finished"], build["left"]) == ("stopped", [], ["project"])

    assert main(["-q", "project", "--store", str(store_dir)]) == 0
    assert pca.stat().st_mtime_ns == made  # the finished map was not made again
    assert describe_store(store)["build"]["state"] == "finished"
    for space in store.spaces():
        reference = Store.open(built_store).load_projection(space, "pca")
        assert np.allclose(store.load_projection(space, "pca"), reference, atol=1e-3)
        assert store.projection_path(space, "umap").exists()
