"""The Python API (precompute/api.py): the example notebook runs on the test store, a store is
built from a DataFrame, and bad arguments get one clear error."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from precompute import build, open_store
from precompute.errors import ConfigError
from precompute.store import ID_COLUMN, PATH_COLUMN

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "example.ipynb"
QUICK = {
    "model": {"backbone": "efficientnet_lite0"}, "embed": {"layers": ["penultimate"]},
    "projection": {"methods": ["pca"]}, "cluster": {"k_max": 3},
    "analysis": {"min_class_size": 2, "shuffles": 2, "probe_shuffles": 1, "bootstrap": 50},
}


def outputs(cell) -> str:
    return "".join("".join(out.get("text") or out.get("data", {}).get("text/plain", ""))
                   for out in cell.get("outputs", []))


def test_the_example_notebook_runs_on_the_test_store(built_store, small_tree, monkeypatch):
    monkeypatch.setenv("FSE_STORE", str(built_store))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert "66 images; 5 feature spaces:" in outputs(code[1])
    assert "efficientnet_lite0/finetuned-style-head" in outputs(code[2])
    by_layer = outputs(code[3])
    assert "artist" in by_layer and "style" in by_layer and "pretrained/_blocks.3" in by_layer
    built = outputs(code[-2])  # the last cell removes that store
    assert "ingest: 16 images accepted, 0 rejected" in built
    assert str(small_tree) not in built  # paths kept relative to the dataset folder


def test_a_store_is_built_from_a_dataframe_of_relative_paths(small_tree, tmp_path,
                                                             monkeypatch):
    images = open_store_images(small_tree)
    monkeypatch.chdir(tmp_path)  # relative paths are read from `root`, not the current folder
    data = build(images, image_column="file", root=small_tree, store=tmp_path / "store", **QUICK)
    table = data.images()
    assert sorted(table[PATH_COLUMN]) == sorted(images["file"])
    space = "efficientnet_lite0/pretrained/penultimate"
    assert data.spaces() == [space]
    assert data.embeddings(space).shape == (len(images), 1280)
    joined = data.projection(space, "pca").merge(data.clusters(space), on=ID_COLUMN)
    assert len(joined) == len(images) and joined[ID_COLUMN].is_unique
    assert set(data.separability().attribute) == {"style"}
    again = build(images, image_column="file", root=small_tree, store=tmp_path / "store",
                  **QUICK)
    assert again.images()[ID_COLUMN].tolist() == table[ID_COLUMN].tolist()  # nothing redone
    assert data.store.meta(data.store.embeddings_path(
        data.store.spaces()[0]))["written"] == again.store.meta(
        again.store.embeddings_path(again.store.spaces()[0]))["written"]


def open_store_images(tree: Path) -> pd.DataFrame:
    """Twelve of the paintings, two of each of six styles, as relative paths and styles."""
    styles = sorted(folder for folder in tree.iterdir() if folder.is_dir())[:6]
    paths = [path for style in styles for path in sorted(style.glob("*.jpg"))[:2]]
    return pd.DataFrame({"file": [p.relative_to(tree).as_posix() for p in paths],
                         "style": [p.parent.name for p in paths]})


@pytest.mark.parametrize(("arguments", "message"), [
    ({"image_column": "missing"}, "the DataFrame has no column 'missing'"),
    ({"trian": {"target": "style"}}, "unknown section(s) trian"),
    ({"train": "style"}, "train= takes a dict of settings"),
    ({"embed": {"batch_size": "sixteen"}}, "batch_size = 'sixteen'"),
    ({"stages": ["ingest", "embeds"]}, "unknown stage(s) embeds"),
])
def test_bad_arguments_to_build_get_one_clear_error_and_no_store(small_tree, tmp_path,
                                                                 arguments, message):
    with pytest.raises(ConfigError) as raised:
        build(open_store_images(small_tree), store=tmp_path / "store",
              **{"image_column": "file", **arguments})
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "store").exists()  # checked before anything is written


def test_open_store_refuses_a_folder_that_is_not_a_store(tmp_path):
    with pytest.raises(Exception, match="is not a store"):
        open_store(tmp_path)
