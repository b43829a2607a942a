"""`precompute export`: each format's files have one row per image, in the store's order, with
the store's own coordinates, clusters and vectors; samples and limits are clear."""

from __future__ import annotations

import io
import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from precompute import export
from precompute.cli import main
from precompute.export import file_stem
from precompute.store import ID_COLUMN, SpaceKey, Store

SPACE = "efficientnet_lite0/finetuned-style-head/penultimate"


@pytest.fixture(scope="module")
def store(built_store) -> Store:
    return Store.open(built_store)


def exported(store: Store, tmp_path, format: str, *extra: str) -> list:
    assert main(["export", str(store.root), "--format", format, "--out", str(tmp_path),
                 *extra]) == 0
    return sorted(tmp_path.iterdir())


def test_parquet_holds_ids_attributes_maps_clusters_and_vectors(store, tmp_path):
    files = exported(store, tmp_path, "parquet")
    assert [path.name for path in files] == sorted(
        f"{file_stem(space)}.parquet" for space in store.spaces())
    space = SpaceKey.parse(SPACE)
    table = pd.read_parquet(tmp_path / f"{file_stem(space)}.parquet")
    images = store.read_images()
    assert table[ID_COLUMN].tolist() == images[ID_COLUMN].tolist()
    assert table["style"].tolist() == images["style"].tolist()
    np.testing.assert_array_equal(table[["umap_x", "umap_y"]].to_numpy(),
                                  store.load_projection(space, "umap"))
    assert table["cluster"].tolist() == store.read_clusters(space)["cluster"].tolist()
    vectors = np.stack(table["vector"].to_numpy())
    np.testing.assert_array_equal(vectors, np.asarray(store.load_embeddings(space), np.float32))
    counts = duckdb.sql(f"select style, count(*) from '{tmp_path / file_stem(space)}.parquet' "
                        "group by style").fetchall()
    assert dict(counts) == images["style"].value_counts().to_dict()


def test_csv_holds_the_same_rows_without_vectors(store, tmp_path):
    exported(store, tmp_path, "csv", "--space", SPACE)
    table = pd.read_csv(tmp_path / f"{file_stem(SpaceKey.parse(SPACE))}.csv")
    points = pd.read_parquet(store.points_path(SpaceKey.parse(SPACE)))
    assert "vector" not in table.columns
    assert table[ID_COLUMN].tolist() == points[ID_COLUMN].tolist()
    np.testing.assert_allclose(table["pca_x"], points["pca_x"], rtol=1e-6)


def test_projector_files_line_up_with_each_other(store, tmp_path):
    exported(store, tmp_path, "projector", "--space", SPACE, "--sample", "20")
    config = json.loads((tmp_path / "projector_config.json").read_text())
    [embedding] = config["embeddings"]
    rows, dimensions = embedding["tensorShape"]
    assert rows == 20
    vectors = np.loadtxt(tmp_path / embedding["tensorPath"], delimiter="\t")
    assert vectors.shape == (20, dimensions)
    metadata = pd.read_csv(tmp_path / embedding["metadataPath"], sep="\t", dtype=str)
    assert len(metadata) == 20 and f"cluster {SPACE}" in metadata.columns
    images = store.read_images()
    order = images.index[images[ID_COLUMN].isin(metadata[ID_COLUMN])]
    assert metadata[ID_COLUMN].tolist() == images[ID_COLUMN].iloc[order].tolist()
    np.testing.assert_allclose(
        vectors, np.asarray(store.load_embeddings(SpaceKey.parse(SPACE)))[order], rtol=1e-3)
    cell = embedding["sprite"]["singleImageDim"][0]
    sprite = Image.open(tmp_path / embedding["sprite"]["imagePath"])
    assert sprite.size == (5 * cell, 5 * cell)  # 20 images on a 5 × 5 grid
    # The sprite's third cell is the third exported image's thumbnail.
    thumbnail = Image.open(io.BytesIO(store.read_thumbnail(int(order[2]))))
    thumbnail = thumbnail.convert("RGB")
    thumbnail.thumbnail((cell, cell))
    left, top = 2 * cell + (cell - thumbnail.width) // 2, (cell - thumbnail.height) // 2
    tile = sprite.crop((left, top, left + thumbnail.width, top + thumbnail.height))
    difference = np.abs(np.asarray(tile, float) - np.asarray(thumbnail, float)).mean()
    assert difference < 8


def test_a_projector_export_above_its_limits_asks_for_a_sample(store, tmp_path, monkeypatch,
                                                               capsys):
    monkeypatch.setattr(export, "PROJECTOR_MAX_IMAGES", 50)
    status = main(["export", str(store.root), "--format", "projector", "--out", str(tmp_path)])
    assert status == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0
    assert "holds 66 images; the Embedding Projector export takes at most 50" in message
    assert "--sample 50" in message
    assert not list(tmp_path.iterdir())


def test_an_unknown_space_is_one_line_naming_the_spaces(store, tmp_path, capsys):
    status = main(["export", str(store.root), "--format", "csv", "--out", str(tmp_path),
                   "--space", "resnet50/pretrained/penultimate"])
    assert status == 2
    message = capsys.readouterr().err.strip()
    assert "resnet50/pretrained/penultimate is not in" in message and SPACE in message
