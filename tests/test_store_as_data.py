"""A built store read as plain data: pandas, NumPy and DuckDB alone (nothing of this package),
joining images, embeddings, maps, clusters and predictions by `sample_id`."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

SPACE = "spaces/efficientnet_lite0/finetuned-style-head/penultimate"
PREDICTIONS = "models/efficientnet_lite0/finetuned-style-head/predictions.parquet"


def test_duckdb_and_pandas_join_the_stores_tables_by_sample_id(built_store: Path):
    images = pd.read_parquet(built_store / "images.parquet")
    points = pd.read_parquet(built_store / SPACE / "points.parquet")
    clusters = pd.read_parquet(built_store / SPACE / "clusters.parquet")
    predictions = pd.read_parquet(built_store / PREDICTIONS)
    vectors = np.load(built_store / SPACE / "embeddings.npy", mmap_mode="r")
    assert {"pca_x", "pca_y", "tsne_x", "umap_y", "cluster"} <= set(points.columns)
    assert len(vectors) == len(images) == len(points)

    # shuffled tables still join: nothing relies on row order
    shuffled = points.sample(frac=1, random_state=0)
    joined = images.merge(shuffled, on="sample_id").merge(
        clusters.sample(frac=1, random_state=1), on="sample_id", suffixes=("", "_k")).merge(
        predictions, on="sample_id")
    assert len(joined) == len(images)
    assert (joined["cluster"] == joined["cluster_k"]).all()
    assert (joined["correct"] == (joined["predicted"] == joined["style"])).all()
    pca = np.load(built_store / SPACE / "projections" / "pca.npy")
    by_id = dict(zip(images["sample_id"], pca[:, 0], strict=True))
    assert np.allclose(joined["pca_x"], joined["sample_id"].map(by_id))

    # the same join in SQL, with the embedding of each image attached by its row number
    table = duckdb.sql(f"""
        SELECT i.sample_id, i.style, p.cluster, m.predicted, m.correct
        FROM '{built_store / "images.parquet"}' i
        JOIN '{built_store / SPACE / "points.parquet"}' p USING (sample_id)
        JOIN '{built_store / PREDICTIONS}' m USING (sample_id)
        JOIN '{built_store / "splits" / "style.parquet"}' s USING (sample_id)
        WHERE s.split = 'test'
    """).df()
    tests = json.loads((built_store / "splits" / "style.json").read_text())["counts"]["test"]
    assert len(table) == tests > 0
    rows = images.reset_index().set_index("sample_id").loc[table["sample_id"], "index"]
    assert vectors[rows.to_numpy()].shape == (tests, vectors.shape[1])
    accuracy = json.loads((built_store / PREDICTIONS).with_suffix(".json").read_text())[
        "metrics"]["accuracy"]
    assert table["correct"].mean() == accuracy
