"""A store built end to end from 66 real paintings: projections, index, thumbnails, info."""

from __future__ import annotations

import io
import itertools
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from precompute.cli import main
from precompute.config import ProjectionConfig, RunConfig
from precompute.errors import ConfigError
from precompute.pipeline import STAGES, stage_order
from precompute.stages.project import run_project
from precompute.stages.x_sorted import write_x_sorted
from precompute.stats.reducers import make_umap
from precompute.stats.vectors import normalised
from precompute.store import SpaceKey, Store, sidecar_path, write_json
from tests.helpers import copy_tree, write_config

SPACE = SpaceKey("efficientnet_lite0/pretrained", "penultimate")
# The default layers of efficientnet_lite0, shallow to deep, and their widths.
LAYERS = {"_blocks.3": 40, "_blocks.7": 80, "_blocks.11": 192, "penultimate": 1280}
SPACES = [SpaceKey("efficientnet_lite0/pretrained", layer) for layer in LAYERS]


def test_store_holds_embeddings_all_four_projections_index_and_thumbnails(built_store):
    store = Store.open(built_store)
    assert [s for s in store.spaces() if s.pretrained] == SPACES
    for space in SPACES:
        embeddings = store.load_embeddings(space)
        assert embeddings.shape == (66, LAYERS[space.layer]), space
        assert embeddings.dtype == np.float16
        assert np.isfinite(embeddings).all() and np.asarray(embeddings, np.float32).std() > 0
        assert store.projection_methods(space) == ["pca", "pca_tsne", "tsne", "umap"]
        for method in store.projection_methods(space):
            coords = store.load_projection(space, method)
            assert coords.shape == (66, 2) and np.isfinite(coords).all(), (space, method)
            assert coords.std(axis=0).min() > 0, (space, method)
    thumbnail = Image.open(io.BytesIO(store.read_thumbnail(65)))
    assert thumbnail.format == "JPEG" and max(thumbnail.size) == 96


def test_each_image_is_its_own_nearest_neighbour(built_store):
    store = Store.open(built_store)
    index = faiss.read_index(str(store.index_path(SPACE)))
    vectors = normalised(store.load_embeddings(SPACE))
    similarities, neighbours = index.search(vectors, 2)
    assert (neighbours[:, 0] == np.arange(len(vectors))).all()
    assert np.allclose(similarities[:, 0], 1.0, atol=1e-3)
    assert (similarities[:, 1] < similarities[:, 0]).all()


def test_same_style_paintings_are_closer_than_chance(built_store):
    """The pretrained space is not noise: a painting's nearest neighbour shares its style more
    often than the 1-in-11 chance level."""
    store = Store.open(built_store)
    styles = store.read_images(["style"])["style"].to_numpy()
    index = faiss.read_index(str(store.index_path(SPACE)))
    _, neighbours = index.search(normalised(store.load_embeddings(SPACE)), 2)
    agreement = (styles[neighbours[:, 1]] == styles).mean()
    assert agreement > 3 / 11


def test_projections_are_reproducible_with_the_same_seed(built_store, tmp_path):
    store = Store.open(built_store)
    config = ProjectionConfig(methods=["pca", "umap", "pca_tsne"], seed=0)
    # a map aligned onto the penultimate's
    aligned = SpaceKey("efficientnet_lite0/pretrained", "_blocks.7")
    before = {
        (space, m): np.array(store.load_projection(space, m))
        for space in (SPACE, aligned) for m in config.methods
    }
    summary = run_project(store, config, spaces=[aligned, SPACE], force=True)
    assert len(summary.made) == 6
    for (space, method), coords in before.items():
        assert np.allclose(store.load_projection(space, method), coords, atol=1e-4), method


def test_a_map_made_before_trust_scores_is_scored_without_being_remade(built_store, tmp_path):
    store = Store(shutil.copytree(built_store, tmp_path / "store"))
    path = store.projection_path(SPACE, "umap")
    meta = store.meta(path)
    trust = meta.pop("trust")
    write_json(sidecar_path(path), meta)  # as the project stage wrote it before scores
    reducer = store.reducer_path(SPACE, "umap").read_bytes()
    summary = run_project(store, ProjectionConfig(methods=["umap"], seed=0), spaces=[SPACE])
    assert (summary.made, summary.up_to_date, summary.scored) == ([], 1, 1)
    assert "1 scored" in summary.line()
    rescored = store.meta(path)
    assert rescored["trust"] == trust and rescored["seconds"] == meta["seconds"]
    assert store.reducer_path(SPACE, "umap").read_bytes() == reducer


def test_each_map_is_kept_in_blocks_of_x_each_sorted_by_y(built_store, tmp_path):
    store = Store(shutil.copytree(built_store, tmp_path / "store"))
    write_x_sorted(store, SPACE, "umap", force=True, block_rows=20)  # 66 points: 4 blocks
    for space in SPACES:
        for method in store.projection_methods(space):
            coords = store.load_projection(space, method)
            blocked = store.load_x_sorted(space, method)
            meta = store.meta(store.x_sorted_path(space, method))
            size = meta["block_rows"]
            assert sorted(blocked["row"]) == list(range(66)), (space, method)
            np.testing.assert_array_equal(coords[blocked["row"]], np.column_stack(
                [blocked["x"], blocked["y"]]))
            blocks = [blocked[start:start + size] for start in range(0, 66, size)]
            assert len(blocks) == (4 if (space, method) == (SPACE, "umap") else 1)
            assert meta["x_bounds"] == [[float(b["x"].min()), float(b["x"].max())]
                                        for b in blocks]
            assert all((np.diff(block["y"]) >= 0).all() for block in blocks)
            assert all(first["x"].max() <= second["x"].min()
                       for first, second in itertools.pairwise(blocks))


def test_a_map_without_its_x_sorted_copy_gets_one_without_being_remade(built_store, tmp_path):
    store = Store(shutil.copytree(built_store, tmp_path / "store"))
    copy = store.x_sorted_path(SPACE, "pca")
    expected = np.load(copy)
    store.invalidate(copy)  # as a store's project stage left it before the copies
    written = store.meta(store.projection_path(SPACE, "pca"))["written"]
    summary = run_project(store, ProjectionConfig(methods=["pca"], seed=0), spaces=[SPACE])
    assert (summary.made, summary.up_to_date, summary.blocked) == ([], 1, 1)
    assert "1 copied in blocks" in summary.line()
    assert store.meta(store.projection_path(SPACE, "pca"))["written"] == written
    np.testing.assert_array_equal(store.load_x_sorted(SPACE, "pca"), expected)


def test_above_fit_sample_a_map_is_fitted_on_a_sample_and_places_the_rest(built_store,
                                                                          tmp_path):
    """At millions of images UMAP and t-SNE are fitted on a sample; every other image is placed
    on that map by the fitted reducer's own transform."""
    store = Store(shutil.copytree(built_store, tmp_path / "store"))
    config = ProjectionConfig(methods=["pca", "umap", "pca_umap"], seed=0, fit_sample=40)
    summary = run_project(store, config, spaces=[SPACE])
    assert len(summary.made) == 3  # fitted on every image before: not up to date any more
    vectors = normalised(store.load_embeddings(SPACE))
    for method in config.methods:
        coords = store.load_projection(SPACE, method)
        assert coords.shape == (66, 2) and np.isfinite(coords).all(), method
        assert store.meta(store.projection_path(SPACE, method))["recipe"]["fit_sample"] == 40
    pca = pickle.loads(store.reducer_path(SPACE, "pca").read_bytes())
    assert pca.n_samples_ == 40
    assert np.allclose(store.load_projection(SPACE, "pca"), pca.transform(vectors), atol=1e-5)
    umap = pickle.loads(store.reducer_path(SPACE, "umap").read_bytes())
    assert umap.embedding_.shape == (40, 2)
    coords = store.load_projection(SPACE, "umap")
    assert all(np.isclose(coords, point).all(axis=1).any() for point in umap.embedding_)
    pca_umap = pickle.loads(store.reducer_path(SPACE, "pca_umap").read_bytes())
    assert pca_umap["pca"].n_components_ == 40 and pca_umap["umap"].embedding_.shape == (40, 2)
    assert run_project(store, config, spaces=[SPACE]).up_to_date == 3
    with pytest.raises(ConfigError, match=r"fit_sample = 5: input should be greater than or "
                                          r"equal to 10"):
        RunConfig.from_dict({"projection": {"fit_sample": 5}})


def test_umaps_kernels_are_kept_on_disk_for_the_next_process():
    """umap-learn compiles its numba kernels without `cache=True`; once a UMAP is made they
    go to numba's on-disk cache (a fresh process's first fit of 1,000 points: 12.3 s before,
    2.4 s with them cached)."""
    import umap.layouts
    import umap.umap_
    from numba.core.dispatcher import Dispatcher

    make_umap(10, seed=0)
    kernels = [kernel for module in (umap.layouts, umap.umap_) for kernel in vars(module).values()
               if isinstance(kernel, Dispatcher)]
    assert len(kernels) > 5
    assert all(kernel.stats.cache_path for kernel in kernels)


def test_a_second_run_skips_finished_work(built_store, capsys):
    assert main(["all", "--store", str(built_store)]) == 0
    printed = capsys.readouterr().out
    assert "ingest: up to date (66 images, 0 rejected)" in printed
    assert "embed efficientnet_lite0/pretrained: up to date" in printed
    reported = printed.splitlines()  # each stage's line as it ends (the table repeats them)
    # the pretrained layers' maps before training, then every space's after it
    assert reported.count("project: up to date (16 projections)") == 1
    assert reported.count("project: up to date (20 projections)") == 1
    assert "index: up to date" in printed and "thumbs: up to date (66 thumbnails)" in printed
    assert "cluster: up to date (5 spaces)" in printed
    assert "analyse: up to date (5 spaces" in printed


def test_info_prints_one_json_object_describing_the_store(built_store):
    result = subprocess.run(
        [sys.executable, "-m", "precompute.cli", "info", str(built_store)],
        capture_output=True, text=True, check=True,
    )
    info = json.loads(result.stdout)
    assert info["images"] == 66
    assert info["rejected"] == {"count": 0, "reasons": {}}
    assert info["attributes"]["style"] == {"kind": "categorical", "values": 11}
    assert info["attributes"]["title"]["kind"] == "text"
    layer = info["layers"]["efficientnet_lite0/pretrained/penultimate"]
    assert layer["shape"] == [66, 1280]
    assert list(layer["projections"]) == ["pca", "pca_tsne", "tsne", "umap"]
    for method, trust in layer["projections"].items():
        assert 0 <= trust["neighbour_preservation"] <= 1, method
        assert 0.5 <= trust["trustworthiness"] <= 1, method  # a map no better than chance: 0.5
    # t-SNE keeps local neighbourhoods that a linear map of 1,280 dimensions cannot
    assert (layer["projections"]["tsne"]["neighbour_preservation"]
            > layer["projections"]["pca"]["neighbour_preservation"])
    assert layer["index"] == "IndexFlatIP"
    assert info["thumbnails"] == 66 and info["format_version"] == 2
    assert info["unfinished"] == []  # a finished build leaves nothing to continue
    # the maps of the embedded layers come before training, so the explorer can show one
    # early; project runs again after training for the fine-tuned space
    assert info["build"]["state"] == "finished" and info["build"]["left"] == []
    assert info["build"]["finished"] == ["ingest", "embed", "thumbs", "project", "quality",
                                         "train", "project", "index", "cluster", "analyse"]


def test_stages_run_in_pipeline_order_and_project_twice_only_around_training():
    assert set(stage_order(list(STAGES))) == set(STAGES)  # no stage left out of the order
    assert stage_order(["analyse", "project", "ingest"]) == ["ingest", "project", "analyse"]
    assert stage_order(["project"]) == ["project"]
    assert stage_order(["train", "project", "embed"]) == ["embed", "project", "train",
                                                          "project"]


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text('[dataset]\nroot = "x"\nlevelz = ["style"]\n')
    assert main(["all", "--config", str(config), "--store", str(tmp_path / "s")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("precompute: error:") and "levelz" in error
    assert len(error.splitlines()) == 1


def test_a_store_from_another_format_version_is_refused(built_store, tmp_path):
    from precompute.errors import StoreError
    from precompute.store import write_json

    other = tmp_path / "future"
    other.mkdir()
    write_json(other / "store.json", {"format_version": 99})
    with pytest.raises(StoreError, match="format version 99"):
        Store.open(other)
    assert Store.open(built_store).root == Path(built_store)


def test_copies_of_one_image_share_their_thumbnail_bytes(small_tree, tmp_path):
    paintings = sorted(small_tree.glob("*/*.jpg"))[:3]
    tree = copy_tree(paintings, tmp_path / "tree")
    original = tree / paintings[0].relative_to(small_tree)
    shutil.copy(original, original.with_name("copyist_same-painting.jpg"))
    config = write_config(tmp_path / "config.toml", tree)
    assert main(["ingest", "--store", str(tmp_path / "store"), "--config", str(config)]) == 0
    assert main(["thumbs", "--store", str(tmp_path / "store")]) == 0
    store = Store.open(tmp_path / "store")
    thumbnails = [store.read_thumbnail(row) for row in range(4)]
    assert len(set(thumbnails)) == 3
    bin_path, spans_path = store.thumb_shard_paths(0)
    assert bin_path.stat().st_size == sum(map(len, set(thumbnails)))
    assert len(set(map(tuple, np.load(spans_path).tolist()))) == 3
