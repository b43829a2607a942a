"""The library beside the CLI: build a store from a config file or straight from a pandas
DataFrame of image paths and attributes, and read a built store as arrays and DataFrames.

    from precompute import build, open_store

    store = build(frame, image_column="path", store="stores/mine",
                  model={"backbone": "efficientnet_lite0"}, train={"target": "style"})
    store.points("efficientnet_lite0/finetuned-style-head/penultimate")

Building needs the pipeline extra (torch); reading a store needs only the viewer install.
docs/example.ipynb walks through both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute.config import RunConfig, load_config
from precompute.errors import ConfigError
from precompute.store import ID_COLUMN, SpaceKey, Store, read_json, write_json

SOURCE_TABLE = "source.parquet"  # a DataFrame given to `build`, kept in the store as its manifest
SECTIONS = tuple(RunConfig.__dataclass_fields__)
Space = str | SpaceKey


def build(source: pd.DataFrame | str | Path, *, store: str | Path,
          image_column: str = "path", root: str | Path | None = None,
          stages: list[str] | None = None, force: bool = False,
          **settings: dict[str, Any]) -> StoreData:
    """Build (or bring up to date) the store at `store`, and open it.

    `source` is a TOML config file (or a store's `config.json`), or a DataFrame with one image
    per row: `image_column` holds its path, every other column is an attribute. Relative
    paths are read from `root` (default: the current folder; for a DataFrame of absolute
    paths, the folder they all sit in). The DataFrame is saved in the store as its manifest.

    `settings` are config sections as dicts and override the file's, e.g.
    `model={"backbone": "efficientnet_lite0"}, train={"target": "style", "modes": ["linear"]}`
    (docs/config.md lists every setting). `stages` runs only those (default: all), each
    skipping work already done unless `force`. Bad settings raise ConfigError with the
    one-line message the CLI prints."""
    from precompute.pipeline import STAGES, cache_numba_kernels, run_stages

    unknown = sorted(set(settings) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"build(): unknown section(s) {', '.join(unknown)}; the sections "
                          f"are {', '.join(SECTIONS)}")
    wrong = sorted(set(stages or ()) - set(STAGES))
    if wrong:
        raise ConfigError(f"build(): unknown stage(s) {', '.join(wrong)}; the stages are "
                          f"{', '.join(STAGES)}")
    manifest = Path(store) / SOURCE_TABLE
    if isinstance(source, pd.DataFrame):  # settings are checked before the store is made
        table, sections = _manifest(source, manifest, image_column, root)
        config = RunConfig.from_dict(_merged(sections, settings), source="build()")
    else:
        config = _overridden(load_config(source), settings)
    target = Store.create(store)
    if isinstance(source, pd.DataFrame):
        target.write_table(manifest, table)
    target.record_writer()
    write_json(target.config_path, config.to_dict())
    cache_numba_kernels()
    run_stages(target, config, list(stages or STAGES), force=force)
    return StoreData(target)


def open_store(root: str | Path) -> StoreData:
    """The built store at `root`, to read; StoreError if it is not a store of this version."""
    return StoreData(Store.open(root))


class StoreData:
    """A built store read as DataFrames and arrays. Every per-image table carries `sample_id`;
    arrays (embeddings, coordinates) are in the row order of `images()`."""

    def __init__(self, store: Store):
        self.store = store

    def __repr__(self) -> str:
        return f"StoreData({str(self.store.root)!r})"

    @property
    def root(self) -> Path:
        return self.store.root

    def config(self) -> dict[str, Any]:
        """The settings the store was last built with."""
        return read_json(self.store.config_path) or {}

    def info(self) -> dict[str, Any]:
        """What `precompute info` prints: counts, attributes, spaces, metrics, clusters,
        separability and unfinished work."""
        from precompute.info import describe_store

        return describe_store(self.store)

    def images(self) -> pd.DataFrame:
        """One row per image: `sample_id`, `image_path` (relative to the dataset folder), its
        attributes, `image_width` and `image_height`."""
        return self.store.read_images()

    def spaces(self) -> list[str]:
        """The store's feature spaces, `<backbone>/<run>/<layer>`."""
        return [str(space) for space in self.store.spaces()]

    def embeddings(self, space: Space) -> np.ndarray:
        """The feature vectors of `space` (images × dimensions), memory-mapped."""
        return self.store.load_embeddings(_key(space))

    def methods(self, space: Space) -> list[str]:
        """The projection methods with a finished map of `space`."""
        return self.store.projection_methods(_key(space))

    def projection(self, space: Space, method: str) -> pd.DataFrame:
        """The map of `space` by `method`: `sample_id`, `x`, `y`."""
        coords = np.asarray(self.store.load_projection(_key(space), method))
        return pd.DataFrame({ID_COLUMN: self._ids(), "x": coords[:, 0], "y": coords[:, 1]})

    def points(self, space: Space) -> pd.DataFrame:
        """The space's `points.parquet`: `sample_id`, `<method>_x`/`_y` of every map,
        `cluster`."""
        return pd.read_parquet(self.store.points_path(_key(space)))

    def clusters(self, space: Space) -> pd.DataFrame:
        """The k-means cluster of every image of `space`: `sample_id`, `cluster`."""
        return self.store.read_clusters(_key(space))

    def separability(self) -> pd.DataFrame:
        """The separability table: one row per space, attribute, condition and metric, with
        its score, baseline and interval."""
        return self.store.read_separability()

    def metrics(self) -> pd.DataFrame:
        """The training runs side by side (`precompute compare`): accuracy and F1 (± std over
        folds), training time, images/s, device."""
        from precompute.compare import runs_table

        return runs_table(self.store)

    def predictions(self, run: str) -> pd.DataFrame:
        """A run's (`<backbone>/<run>`) predicted label and confidence for every image, with
        its split."""
        return pd.read_parquet(self.store.predictions_path(run))

    def quality_issues(self) -> pd.DataFrame:
        """The flagged images of `quality/issues.parquet` (near-duplicates, split leaks, label
        issues, outliers); empty when the quality stage has not run."""
        path = self.store.quality_path()
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    def _ids(self) -> pd.Series:
        return self.store.read_images([ID_COLUMN])[ID_COLUMN]


def _key(space: Space) -> SpaceKey:
    return space if isinstance(space, SpaceKey) else SpaceKey.parse(space)


def _manifest(frame: pd.DataFrame, manifest: Path, image_column: str,
              root: str | Path | None) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The DataFrame as the store's manifest (paths relative to the dataset folder), and the
    dataset section that reads it from `manifest`."""
    if image_column not in frame.columns:
        raise ConfigError(f"build(): the DataFrame has no column {image_column!r} (its columns: "
                          f"{', '.join(map(str, frame.columns))}); pass image_column=")
    folder = Path(root) if root is not None else _common_folder(frame[image_column])
    table = frame.reset_index(drop=True).astype("string")
    table[image_column] = table[image_column].map(lambda path: _relative(path, folder))
    return table, {"dataset": {"root": str(folder.resolve()),
                               "manifest": str(manifest.resolve()),
                               "path_column": image_column}}


def _common_folder(paths: pd.Series) -> Path:
    """The folder every absolute path sits in, or the current folder for relative paths."""
    given = [Path(p) for p in paths.dropna().astype(str) if str(p).strip()]
    if given and all(path.is_absolute() for path in given):
        return Path(os.path.commonpath([str(path.parent) for path in given]))
    return Path.cwd()


def _relative(path: object, folder: Path) -> object:
    """An absolute path inside `folder` as the path from it (as the store keeps paths); any
    other value as it is, for ingest to accept or reject."""
    if not isinstance(path, str) or not Path(path).is_absolute():
        return path
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return path


def _merged(base: dict[str, dict[str, Any]], settings: dict[str, dict[str, Any]]
            ) -> dict[str, dict[str, Any]]:
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in settings.items():
        if not isinstance(values, dict):
            raise ConfigError(f"build(): {section}= takes a dict of settings, got {values!r}")
        merged.setdefault(section, {}).update(values)
    return merged


def _overridden(config: RunConfig, settings: dict[str, dict[str, Any]]) -> RunConfig:
    if not settings:
        return config
    return RunConfig.from_dict(_merged(config.to_dict(), settings), source="build()")
