"""The store: the one module that knows the on-disk layout, its format version and its schema.

Precompute writes through it and the explorer reads through it. docs/store.md describes every
file and column. Layout (format version 2):

    store.json                         format version, the writing package's and libraries' versions
    config.json                        the run config of the latest `precompute` run
    build.json                         the latest run's stages: finished, running, still to come
    images.parquet (+ images.json)     accepted images with their `sample_id`; row i is row i of
                                       every array below
    rejected.parquet                   excluded files with the reason
    thumbs/part-NNNNN.bin + .spans.npy + thumbs.json   JPEG bytes; (start, length) per row
    spaces/<model>/<layer>/embeddings.npy (+ .json)        float16 by default, memory-mappable
    spaces/<model>/<layer>/parts/embeddings-RRRRR-of-WWWWW.npy (+ .json)   one torchrun rank's
                                       rows, until the merge step joins them into embeddings.npy
    spaces/<model>/embed-progress[-RRRRR-of-WWWWW].json   rows done by an interrupted pass
    spaces/<model>/<layer>/projections/<method>.npy (+ .json, + .reducer.pkl)
    spaces/<model>/<layer>/projections/by-x/<method>.npy (+ .json)   the same points with their
                                       rows, in blocks of x, each block in order of y: a zoomed
                                       view reads its part of a few blocks
    spaces/<model>/<layer>/points.parquet (+ .json)     sample_id, <method>_x/_y, cluster
    spaces/<model>/<layer>/index.faiss (+ .json)
    spaces/<model>/<layer>/clusters.parquet (+ .json)           k-means label per sample_id
    spaces/<model>/<layer>/separability.parquet (+ .json)       this space's rows of the table
    splits/<target>.parquet (+ .json)              train/val/test part per sample_id
    models/<model>/best.pt, last.pt (per fold-<f>/ with folds), predictions.parquet (+ .json:
                                       metrics)   one training run
    analysis/separability.parquet (+ .json)        attribute × layer separability

A model is `<backbone>/<run>`: `efficientnet_lite0/pretrained`, or a training run such as
`efficientnet_lite0/finetuned-style-head`; a feature space is a model at one layer
(`efficientnet_lite0/pretrained/_blocks.7`). Several backbones and runs live side by side.

Every artifact has a JSON sidecar (`<name>.json`) holding the recipe that made it: the config
section and the fingerprints of its inputs. The sidecar is written last, so an artifact counts as
complete only when its sidecar exists and its recipe matches; every file is written under a
temporary name and renamed into place, so a killed run never leaves a half-written artifact that
looks complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute.errors import StoreError

FORMAT_VERSION = 2
PRETRAINED = "pretrained"  # the run name of a backbone's own weights
# Libraries whose versions store.json records: they decide what the store's numbers are.
RECORDED_VERSIONS = ("feature-space-explorer", "torch", "torchvision", "scikit-learn",
                     "umap-learn", "openTSNE", "faiss-cpu", "faiss-gpu")
# What each method's pickled reducer needs to load and place points as it did.
REDUCER_LIBRARIES = {"pca": ("scikit-learn",), "tsne": ("openTSNE",), "umap": ("umap-learn",),
                     "pca_tsne": ("scikit-learn", "openTSNE"),
                     "pca_umap": ("scikit-learn", "umap-learn")}
MISSING = "(missing)"  # the explicit value of a missing categorical attribute
PENULTIMATE = "penultimate"  # the layer name of the classifier's input

# Columns of images.parquet that are not attributes.
# The kinds of problem in quality/issues.parquet's `kind` column, most serious first.
SPLIT_LEAK, NEAR_DUPLICATE, LABEL_ISSUE, OUTLIER = (
    "split_leak", "near_duplicate", "label_issue", "outlier")
QUALITY_KINDS = (SPLIT_LEAK, NEAR_DUPLICATE, LABEL_ISSUE, OUTLIER)
ID_COLUMN = "sample_id"
PATH_COLUMN = "image_path"
WIDTH_COLUMN = "image_width"
HEIGHT_COLUMN = "image_height"
RESERVED_COLUMNS = (ID_COLUMN, PATH_COLUMN, WIDTH_COLUMN, HEIGHT_COLUMN)

# Kinds of attribute recorded in images.json.
CATEGORICAL, NUMERIC, TEXT = "categorical", "numeric", "text"

THUMB_SHARD_ROWS = 10_000
X_SORTED_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("row", "<i8")])  # projections/by-x
X_BLOCK_ROWS = 1_000_000  # points per block of projections/by-x


def model_name(backbone: str, run: str) -> str:
    """A model's name: its backbone and its run, e.g. `efficientnet_lite0/pretrained`."""
    return f"{backbone}/{run}"


@dataclass(frozen=True, order=True)
class SpaceKey:
    """A feature space: the embeddings of one model (`<backbone>/<run>`) at one layer, e.g.
    `efficientnet_lite0/finetuned-style-head/penultimate`."""

    model: str
    layer: str

    def __str__(self) -> str:
        return f"{self.model}/{self.layer}"

    @property
    def backbone(self) -> str:
        return self.model.partition("/")[0]

    @property
    def run(self) -> str:
        """`pretrained` or a training run's name."""
        return self.model.partition("/")[2]

    @property
    def pretrained(self) -> bool:
        return self.run == PRETRAINED

    @classmethod
    def parse(cls, text: str) -> SpaceKey:
        """Read `backbone/run/layer`."""
        parts = text.split("/")
        if len(parts) != 3 or not all(parts):
            raise StoreError(f"feature space {text!r} is not of the form backbone/run/layer, "
                             "e.g. efficientnet_lite0/pretrained/penultimate")
        return cls(model_name(*parts[:2]), parts[2])


def fingerprint(values: Sequence[str] | pd.Series) -> str:
    """A short stable hash of a sequence of strings (e.g. the ordered sample ids)."""
    digest = hashlib.sha1()
    for value in values:
        digest.update(str(value).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def sample_id(relative_path: str) -> str:
    """The stable id of an image: a hash of its path relative to the dataset root."""
    return hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:16]


def now() -> str:
    """UTC timestamp used in sidecars."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


def read_json(path: Path) -> Any | None:
    """Read JSON, or None when the file does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def sidecar_path(artifact: Path) -> Path:
    """The JSON file that describes `artifact` and marks it complete."""
    return artifact.with_suffix(".json")


class Store:
    """A store folder. Use `Store.create` to start one and `Store.open` to read one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---------------------------------------------------------------- opening
    @classmethod
    def create(cls, root: str | Path) -> Store:
        """Open the store at `root`, creating the folder and its `store.json` when missing."""
        store = cls(root)
        if store.manifest_path.exists():
            return cls.open(root)
        store.root.mkdir(parents=True, exist_ok=True)
        write_json(store.manifest_path, {"format_version": FORMAT_VERSION, "created": now(),
                                         "written_by": library_versions()})
        return store

    @classmethod
    def open(cls, root: str | Path) -> Store:
        """Open an existing store, checking its format version."""
        store = cls(root)
        manifest = read_json(store.manifest_path)
        if manifest is None:
            raise StoreError(
                f"{store.root} is not a store (no store.json); build one with "
                "`precompute all --config FILE --store DIR`"
            )
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(
                f"store {store.root} has format version {version}; this program reads version "
                f"{FORMAT_VERSION} (spaces named by backbone and run, tables keyed by sample_id)."
                f" Rebuild it into a new folder with `precompute all --config "
                f"{store.config_path} --store NEW_FOLDER`: its settings are reused, the "
                "images are read again from the dataset and the models trained again"
            )
        return store

    def record_writer(self) -> None:
        """Note in store.json the versions of the package and libraries now writing to it."""
        manifest = read_json(self.manifest_path) or {}
        if manifest.get("written_by") != library_versions():
            write_json(self.manifest_path, {**manifest, "written_by": library_versions(),
                                            "updated": now()})

    @staticmethod
    def exists(root: str | Path) -> bool:
        """Whether `root` holds a store with ingested images."""
        store = Store(root)
        return store.manifest_path.exists() and sidecar_path(store.images_path).exists()

    # ---------------------------------------------------------------- paths
    @property
    def manifest_path(self) -> Path:
        return self.root / "store.json"

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def build_path(self) -> Path:
        """The latest run's stages, those finished and the one running (precompute/progress.py)."""
        return self.root / "build.json"

    @property
    def images_path(self) -> Path:
        return self.root / "images.parquet"

    @property
    def rejected_path(self) -> Path:
        return self.root / "rejected.parquet"

    @property
    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    @property
    def thumbs_path(self) -> Path:
        """The completion marker of the thumbnail shards."""
        return self.thumbs_dir / "thumbs.json"

    def thumb_shard_paths(self, shard: int) -> tuple[Path, Path]:
        """The bytes file of one thumbnail shard and its spans: a (rows × 2) int64 array of
        (start, length) per row, so identical thumbnails can share their bytes."""
        stem = self.thumbs_dir / f"part-{shard:05d}"
        return stem.with_suffix(".bin"), stem.with_suffix(".spans.npy")

    def space_dir(self, space: SpaceKey) -> Path:
        return self.root / "spaces" / space.model / space.layer

    def embeddings_path(self, space: SpaceKey) -> Path:
        return self.space_dir(space) / "embeddings.npy"

    def embeddings_part_path(self, space: SpaceKey, part: str) -> Path:
        """One rank's block of rows of a sharded embedding pass; `part` is `RRRRR-of-WWWWW`."""
        return self.space_dir(space) / "parts" / f"embeddings-{part}.npy"

    def projection_path(self, space: SpaceKey, method: str) -> Path:
        return self.space_dir(space) / "projections" / f"{method}.npy"

    def x_sorted_path(self, space: SpaceKey, method: str) -> Path:
        """`method`'s projection of `space` in blocks: the points sorted by x, cut into blocks
        of `block_rows` (sidecar), each block sorted by y; each point's x, y and row
        (X_SORTED_DTYPE), and each block's least and greatest x in the sidecar's `x_bounds`. A
        view narrower than the map reads only its part of the blocks it overlaps."""
        return self.space_dir(space) / "projections" / "by-x" / f"{method}.npy"

    def reducer_path(self, space: SpaceKey, method: str) -> Path:
        """The fitted reducer, kept so new images can be placed on the same map."""
        return self.space_dir(space) / "projections" / f"{method}.reducer.pkl"

    def index_path(self, space: SpaceKey) -> Path:
        return self.space_dir(space) / "index.faiss"

    def clusters_path(self, space: SpaceKey) -> Path:
        """Cluster label per image (columns `sample_id`, `cluster`) of one feature space."""
        return self.space_dir(space) / "clusters.parquet"

    def points_path(self, space: SpaceKey) -> Path:
        """One table per space for other tools: `sample_id`, `<method>_x`, `<method>_y` for
        every projection, and `cluster` once clustered."""
        return self.space_dir(space) / "points.parquet"

    def separability_part_path(self, space: SpaceKey) -> Path:
        """One feature space's rows of the separability table (the whole table is rebuilt from
        these, so a new space is analysed without redoing the others)."""
        return self.space_dir(space) / "separability.parquet"

    # Fine-tuned models: models/<model>/ holds checkpoints, predictions and metrics.
    def model_dir(self, model: str) -> Path:
        return self.root / "models" / model

    def split_path(self, target: str) -> Path:
        """The train/val/test split of one target attribute (columns `sample_id`, `split`,
        image order)."""
        return self.root / "splits" / f"{target}.parquet"

    def checkpoint_path(self, model: str, which: str = "best", fold: int = 0) -> Path:
        """`best` (lowest validation loss) or `last` (resume point) checkpoint of a training
        run, or of its model for fold `fold` (1 … k) when it trains one per fold."""
        folder = self.model_dir(model) / f"fold-{fold}" if fold else self.model_dir(model)
        return folder / f"{which}.pt"

    def predictions_path(self, model: str) -> Path:
        """Per-image predictions of a training run (`sample_id`, `split`, `predicted`,
        `confidence`, `correct`; image order); its sidecar holds the metrics."""
        return self.model_dir(model) / "predictions.parquet"

    def quality_path(self) -> Path:
        """Flagged images of the quality stage: near-duplicates, split leaks, label issues and
        outliers, one row per image and problem (`sample_id`, `kind`, `attribute`, `score`,
        `related_sample_id`, `given`, `suggested`, `group`)."""
        return self.root / "quality" / "issues.parquet"

    def quality_part_path(self, part: str) -> Path:
        """A finished part of the quality stage (its neighbour search, one attribute's label
        check), kept so an interrupted run does not redo it."""
        return self.root / "quality" / "parts" / part

    def separability_path(self) -> Path:
        """The attribute × layer separability table."""
        return self.root / "analysis" / "separability.parquet"

    def embed_progress_path(self, model: str, part: str = "") -> Path:
        """Rows finished by an interrupted embedding pass of `model` (all its layers at once),
        or by one rank's pass when `part` names it."""
        suffix = f"-{part}" if part else ""
        return self.root / "spaces" / model / f"embed-progress{suffix}.json"

    @staticmethod
    def partial_path(artifact: Path) -> Path:
        """Where an artifact grows while it is being written in pieces (resumable)."""
        return artifact.with_name(artifact.name + ".partial")

    # ---------------------------------------------------------------- completion
    def meta(self, artifact: Path) -> dict[str, Any] | None:
        """The sidecar of a complete artifact, or None."""
        meta = read_json(sidecar_path(artifact))
        return meta if meta is not None and artifact.exists() else None

    def is_current(self, artifact: Path, recipe: dict[str, Any]) -> bool:
        """Whether `artifact` is complete and was made by exactly `recipe`."""
        meta = self.meta(artifact)
        return meta is not None and meta.get("recipe") == jsonable(recipe)

    def commit(self, artifact: Path, recipe: dict[str, Any], **info: Any) -> None:
        """Mark a written artifact complete by writing its sidecar (recipe + information)."""
        write_json(sidecar_path(artifact), {"recipe": jsonable(recipe), "written": now(), **info})

    def invalidate(self, artifact: Path) -> None:
        """Forget an artifact (its sidecar first, so it never looks complete meanwhile)."""
        sidecar_path(artifact).unlink(missing_ok=True)
        artifact.unlink(missing_ok=True)

    # ---------------------------------------------------------------- tables and arrays
    @staticmethod
    def write_table(path: Path, table: pd.DataFrame) -> None:
        """Write a Parquet table atomically."""
        with atomic_path(path) as tmp:
            table.to_parquet(tmp, index=False)

    @staticmethod
    def write_array(path: Path, array: np.ndarray) -> None:
        """Write a .npy array atomically."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, array)

    def read_images(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The accepted images, one row per embedding row."""
        if self.meta(self.images_path) is None:
            raise StoreError(f"{self.root} has no ingested images; run `precompute ingest` first")
        return pd.read_parquet(self.images_path, columns=columns)

    def images_meta(self) -> dict[str, Any]:
        """images.json: attribute kinds, dataset root, fingerprint, counts."""
        meta = self.meta(self.images_path)
        if meta is None:
            raise StoreError(f"{self.root} has no ingested images; run `precompute ingest` first")
        return meta

    def read_rejected(self) -> pd.DataFrame:
        """Files excluded at ingestion with their reason (empty when none)."""
        if not self.rejected_path.exists():
            return pd.DataFrame({"source": [], "row": [], "reason": []})
        return pd.read_parquet(self.rejected_path)

    def spaces(self) -> list[SpaceKey]:
        """Feature spaces with complete embeddings: by backbone, the pretrained model first,
        then each model's layers from shallow to deep (the `depth` in their sidecars; by name
        where a sidecar has none)."""
        found = []
        for path in (self.root / "spaces").glob("*/*/*/embeddings.npy"):
            meta = self.meta(path)
            if meta is not None:
                space = SpaceKey(_model_of(path.parent.parent), path.parent.name)
                found.append((space.backbone, not space.pretrained, space.run,
                              meta.get("depth", float("inf")), space.layer, space))
        return [space for *_, space in sorted(found)]

    def embed_progress_paths(self) -> list[Path]:
        """The progress files of interrupted embedding passes (`embed_progress_path`), sorted."""
        return sorted((self.root / "spaces").glob("*/*/embed-progress*.json"))

    def unmerged_parts(self) -> dict[SpaceKey, tuple[int, int]]:
        """Layers whose torchrun parts are not merged yet: (parts complete, ranks). A part is
        complete with its sidecar; it grows as `<part>.npy.partial` while its rank runs."""
        found = {}
        for folder in sorted((self.root / "spaces").glob("*/*/*/parts")):
            space = SpaceKey(_model_of(folder.parent.parent), folder.parent.name)
            names = [p.name for p in folder.glob("embeddings-*-of-*.npy*")]
            if names and self.meta(self.embeddings_path(space)) is None:
                complete = sum(self.meta(p) is not None
                               for p in folder.glob("embeddings-*-of-*.npy"))
                ranks = int(names[0].split("-of-")[1].split(".")[0])  # RRRRR-of-WWWWW
                found[space] = (complete, ranks)
        return found

    def training_checkpoints(self) -> list[tuple[str, int]]:
        """(training run, fold) of every `last` checkpoint, finished or not, sorted; fold 0 is
        a run without folds."""
        models = self.root / "models"
        found = [(_model_of(path.parent), 0) for path in models.glob("*/*/last.pt")]
        found += [(_model_of(path.parent.parent), int(path.parent.name.removeprefix("fold-")))
                  for path in models.glob("*/*/fold-*/last.pt")]
        return sorted(found)

    def finetuned_models(self) -> list[str]:
        """Training runs with complete predictions and metrics, sorted."""
        return sorted(
            _model_of(path.parent)
            for path in (self.root / "models").glob("*/*/predictions.parquet")
            if self.meta(path) is not None
        )

    def projection_methods(self, space: SpaceKey) -> list[str]:
        """Methods with a complete projection of `space`."""
        folder = self.space_dir(space) / "projections"
        return sorted(
            p.stem for p in folder.glob("*.npy") if self.meta(p) is not None
        )

    def load_embeddings(self, space: SpaceKey) -> np.ndarray:
        """The embeddings of `space`, memory-mapped (N × D)."""
        path = self.embeddings_path(space)
        if self.meta(path) is None:
            raise StoreError(f"{self.root} has no complete embeddings for {space}")
        return np.load(path, mmap_mode="r")

    def load_projection(self, space: SpaceKey, method: str) -> np.ndarray:
        """2D coordinates (N × 2, float32) of `space` by `method`, memory-mapped."""
        path = self.projection_path(space, method)
        if self.meta(path) is None:
            raise StoreError(f"{self.root} has no {method} projection of {space}")
        return np.load(path, mmap_mode="r")

    def load_x_sorted(self, space: SpaceKey, method: str) -> np.ndarray | None:
        """The projection in blocks of x (`x_sorted_path`), memory-mapped; None in a store
        whose project stage has not written it yet."""
        path = self.x_sorted_path(space, method)
        return np.load(path, mmap_mode="r") if self.meta(path) is not None else None

    def load_reducer(self, space: SpaceKey, method: str) -> Any:
        """The fitted reducer of a projection, refused when the libraries that pickled it are
        not the installed ones (a pickle of another version can fail or place points wrongly)."""
        meta = self.meta(self.projection_path(space, method))
        if meta is None:
            raise StoreError(f"{self.root} has no {method} projection of {space}")
        written, installed = meta.get("reducer_written_by", {}), library_versions()
        changed = [f"{name} {written.get(name, '?')} (installed: {installed.get(name, 'none')})"
                   for name in REDUCER_LIBRARIES.get(method, ())
                   if written.get(name) != installed.get(name)]
        if changed:
            raise StoreError(
                f"the {method} reducer of {space} was saved by {', '.join(changed)}; run "
                f"`precompute project --store {self.root} --force` to refit it with these")
        with open(self.reducer_path(space, method), "rb") as handle:
            return pickle.load(handle)  # written by our own project stage

    def read_clusters(self, space: SpaceKey) -> pd.DataFrame:
        """Cluster of every image of `space` (columns `sample_id`, `cluster`, image order); the
        sidecar (`meta(clusters_path(space))`) holds k, the silhouette by k and the enrichment."""
        path = self.clusters_path(space)
        if self.meta(path) is None:
            raise StoreError(f"{self.root} has no clusters of {space}; run `precompute cluster`")
        return pd.read_parquet(path)

    def read_separability(self) -> pd.DataFrame:
        """The separability table: one row per (space, attribute, given, metric)."""
        path = self.separability_path()
        if self.meta(path) is None:
            raise StoreError(f"{self.root} has no separability table; run `precompute analyse`")
        return pd.read_parquet(path)

    def read_thumbnail(self, row: int) -> bytes:
        """The JPEG thumbnail of image `row` (its position in images.parquet)."""
        if self.meta(self.thumbs_path) is None:
            raise StoreError(f"{self.root} has no thumbnails; run `precompute thumbs`")
        shard, offset = divmod(int(row), THUMB_SHARD_ROWS)
        bin_path, spans_path = self.thumb_shard_paths(shard)
        start, length = (int(v) for v in np.load(spans_path, mmap_mode="r")[offset])
        with open(bin_path, "rb") as handle:
            handle.seek(start)
            return handle.read(length)


def _model_of(folder: Path) -> str:
    """The model named by a `<backbone>/<run>` folder."""
    return model_name(folder.parent.name, folder.name)


def library_versions() -> dict[str, str]:
    """The installed versions of the package and the libraries that shape a store's numbers
    (read from the installed metadata, so nothing is imported)."""
    from importlib import metadata

    found = {}
    for name in RECORDED_VERSIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def jsonable(data: Any) -> Any:
    """Round-trip through JSON so recipes compare equal to what was read back from disk."""
    return json.loads(json.dumps(data, sort_keys=True, default=str))
