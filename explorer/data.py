"""Read-only store data shared by every browser session of one server process.

Sessions keep only row numbers and view settings; everything here is computed once per process
(`pn.cache`) and cached per feature space or projection as it is first needed, in bounded
least-recently-used caches (explorer/bounded_cache.py) whose limits are below: a server that
has shown many projections keeps those last used, not all of them.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import panel as pn

from explorer.bounded_cache import BoundedCache
from explorer.build_status import store_stamp
from explorer.geometry import PointIndex
from precompute.stats.vectors import normalised
from precompute.store import (
    CATEGORICAL,
    ID_COLUMN,
    MISSING,
    NUMERIC,
    PATH_COLUMN,
    QUALITY_KINDS,
    TEXT,
    SpaceKey,
    Store,
)

OTHER = "(other)"  # the colour of categories beyond the top N
CLUSTER = "cluster"  # an attribute whose values depend on the feature space shown
QUALITY, NO_ISSUE = "quality", "none"  # each image's most serious quality flag
DERIVED_KEPT = 8  # results of one kind (e.g. whole-map images) kept per process
PROJECTIONS_KEPT = 8  # projections' map coordinates and spatial indexes (~0.2 GB each at 10M)
SAMPLE_ID = re.compile(r"[0-9a-f]{16}")  # what precompute.store.sample_id makes
SPACES_KEPT = 4  # feature spaces' FAISS indexes and fitted reducers
COLOURINGS_KEPT = 32  # attributes as colour channels, counts and clusters (N values each)
THUMBNAILS_KEPT = 2_000  # decoded thumbnails drawn on the map (at most 96² × 3 bytes each)
T = TypeVar("T")


def _kept(max_items: int) -> BoundedCache:
    return field(default_factory=lambda: BoundedCache(max_items), repr=False)


@dataclass
class ExplorerData:
    """A store opened for exploring: the point table, its feature spaces and their projections."""

    store: Store
    table: pd.DataFrame  # one row per image: id, path and attributes
    kinds: dict[str, str]  # attribute → categorical / numeric / text
    methods: dict[SpaceKey, list[str]]  # feature space → projection methods
    dask: str | None = None  # the map's image is aggregated through this Dask scheduler
    quality: pd.DataFrame | None = None  # quality/issues.parquet, when the stage has run
    trust: dict[tuple[SpaceKey, str], dict[str, float]] = field(default_factory=dict)
    shares: frozenset[str] = frozenset()  # numeric attributes shown as percentages
    has_thumbnails: bool = False  # the thumbs stage has run
    depth_labels: dict[SpaceKey, str] = field(default_factory=dict)  # "block 8 of 16"
    stamp: tuple = ()  # the store's state when read (explorer/build_status.py)
    _coords: BoundedCache[tuple[np.ndarray, tuple]] = _kept(PROJECTIONS_KEPT)
    _points: BoundedCache[PointIndex] = _kept(PROJECTIONS_KEPT)
    _colours: BoundedCache[pd.Series] = _kept(COLOURINGS_KEPT)
    _counts: BoundedCache[pd.Series] = _kept(COLOURINGS_KEPT)
    _clusters: BoundedCache[pd.Series] = _kept(COLOURINGS_KEPT)
    _indexes: BoundedCache[object] = _kept(SPACES_KEPT)
    _reducers: BoundedCache[object] = _kept(SPACES_KEPT)
    _thumbnails: BoundedCache[np.ndarray] = _kept(THUMBNAILS_KEPT)
    _derived: dict[object, BoundedCache] = field(default_factory=dict, repr=False)
    _columns: dict[str, pd.Series] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Each column's Series made once: with pandas' copy-on-write every `table[name]` is a
        # new view whose weak reference the shared column keeps until pandas next clears them
        # (hundreds between clearings). A hover reads every attribute, so twenty sessions left
        # thousands of such small objects behind, each holding a page of freed session memory
        # in the server (docs/benchmarks.md, Twenty users at once).
        self._columns = dict(self.table.items())

    # ------------------------------------------------------------------ what there is
    @property
    def spaces(self) -> list[SpaceKey]:
        return [space for space, methods in self.methods.items() if methods]

    @property
    def colour_attributes(self) -> list[str]:
        """Attributes a map can be coloured by: categorical first, then numeric."""
        return self.attributes_of(CATEGORICAL) + self.attributes_of(NUMERIC)

    def attributes_of(self, kind: str) -> list[str]:
        return [a for a, k in self.kinds.items() if k == kind]

    def __len__(self) -> int:
        return len(self.table)

    @property
    def several_backbones(self) -> bool:
        """Whether the store's spaces come from more than one backbone, so names say which."""
        return len({space.backbone for space in self.spaces}) > 1

    def space_label(self, space: SpaceKey) -> str:
        """How a feature space is named in the selectors: its run and layer with the layer's
        depth ("pretrained · _blocks.7 · block 8 of 16"), after its backbone when the store
        has several (the full key `backbone/run/layer` is in the URL)."""
        run = f"{space.backbone} {space.run}" if self.several_backbones else space.run
        return f"{run} · {self.layer_label(space)}"

    def layer_label(self, space: SpaceKey) -> str:
        """A layer's name with its depth when the embed stage recorded one."""
        depth = self.depth_labels.get(space)
        return space.layer if depth is None else f"{space.layer} · {depth}"

    def best_method(self, space: SpaceKey) -> str:
        """The map of `space` that keeps the most of its neighbours (the first method when
        none is scored)."""
        return max(self.methods[space],
                   key=lambda method: self.trust[space, method].get("neighbour_preservation", -1))

    def column(self, name: str, space: SpaceKey | None = None) -> pd.Series:
        """One column of the table (an attribute, the id or the path) for every image, the
        same Series on every call; `cluster` is that of the given feature space."""
        if name == CLUSTER:
            return self.clusters(space)
        return self._columns[name]

    def clusters(self, space: SpaceKey | None) -> pd.Series:
        """The k-means cluster of every image in `space` ("(missing)" where it has none)."""

        def read() -> pd.Series:
            if space is not None and self.store.meta(self.store.clusters_path(space)):
                labels = self.store.read_clusters(space)["cluster"].to_numpy()
                names = [f"cluster {c}" for c in range(int(labels.max()) + 1)]
                values = pd.Categorical.from_codes(labels, categories=names)
            else:
                values = pd.Categorical([MISSING] * len(self.table))
            return pd.Series(values, index=self.table.index)

        return self._clusters.get(space, read)

    # ------------------------------------------------------------------ map coordinates
    def coords(self, space: SpaceKey, method: str) -> np.ndarray:
        """N × 2 float32 map coordinates, centred and scaled into [-1, 1] (aspect kept), so
        every method and layer shares one view extent; computed once per projection and
        shared, so read-only."""
        return self._scaled_coords(space, method)[0]

    def _scaled_coords(self, space: SpaceKey, method: str) -> tuple[np.ndarray, tuple]:
        def scale() -> tuple[np.ndarray, tuple]:
            xy = np.asarray(self.store.load_projection(space, method), dtype=np.float32)
            low, high = xy.min(axis=0), xy.max(axis=0)
            centre_and_half = ((low + high) / 2, float((high - low).max()) / 2 or 1.0)
            coords = scaled_to_map(xy, centre_and_half)
            coords.flags.writeable = False
            return coords, centre_and_half

        return self._coords.get((space, method), scale)

    def to_map(self, space: SpaceKey, method: str, projected: np.ndarray) -> np.ndarray:
        """Projection coordinates (N × 2) → map coordinates of this session's view."""
        return scaled_to_map(projected, self.map_scale(space, method))

    def map_scale(self, space: SpaceKey, method: str) -> tuple[np.ndarray, float]:
        """The centre and half-extent that scale `method`'s projection of `space` into [-1, 1]."""
        return self._scaled_coords(space, method)[1]

    def place(self, space: SpaceKey, method: str, vector: np.ndarray) -> tuple[float, float]:
        """Where a new embedding of `space` lands on the `method` map: the stored reducer's
        own `transform` (PCA, UMAP, openTSNE), applied to the unit-length vector."""

        reducer = self._reducers.get((space, method), lambda: self._reducer(space, method))
        unit = vector.astype(np.float32) / max(float(np.linalg.norm(vector)), 1e-12)
        x, y = self.to_map(space, method, reducer.transform(unit.reshape(1, -1)))[0]
        return float(x), float(y)

    def _reducer(self, space: SpaceKey, method: str) -> Any:
        """The stored reducer; a UMAP's kernels then go to numba's on-disk cache, so only the
        first server process to place an upload on a UMAP map compiles them (3.8 s)."""
        reducer = self.store.load_reducer(space, method)
        if "umap" in method:
            from precompute.stats.reducers import cache_umap_kernels  # the pipeline extra's

            cache_umap_kernels()
        return reducer

    def points(self, space: SpaceKey, method: str) -> PointIndex:
        """Spatial look-ups (nearest, box, lasso) on one projection."""
        return self._points.get((space, method),
                                lambda: PointIndex(self.coords(space, method)))

    # ------------------------------------------------------------------ colours
    def colour_values(self, attribute: str, top: int, space: SpaceKey | None = None
                      ) -> pd.Series:
        """The attribute as the colour channel: categories ordered by frequency, those beyond
        the `top` most frequent merged into OTHER; numbers stay numbers. Works on category
        codes, so it stays fast at millions of rows."""

        def colour() -> pd.Series:
            values = self.column(attribute, space)
            if self.kinds[attribute] == NUMERIC:
                return values.astype("float32")
            counts = self.value_counts(attribute, space)
            keep = [str(c) for c in counts.index[:top]]
            categories = keep + ([OTHER] if len(counts) > top else [])
            position = {category: i for i, category in enumerate(keep)}
            recode = np.array(
                [position.get(str(c), len(keep)) for c in values.cat.categories], dtype=np.int32
            )
            codes = recode[values.cat.codes.to_numpy()]
            return pd.Series(pd.Categorical.from_codes(codes, categories=categories),
                             index=values.index)

        return self._colours.get((attribute, top, space if attribute == CLUSTER else None),
                                 colour)

    def derived(self, key: tuple, make: Callable[[], T], keep: int = DERIVED_KEPT) -> T:
        """`make()`, computed once per process for `key` and shared by every session. Results
        are kept by kind, the key's first item: of more than `keep` of one kind the least
        recently used is dropped (they can be large at 1M rows), and one kind never drops
        another's."""
        kind = self._derived.setdefault(key[0], BoundedCache(keep))
        return kind.get(key, make)

    def separability(self) -> pd.DataFrame | None:
        """The store's separability table (None before the analyse stage), read once per
        process for the Layers tab and its strip."""
        def read() -> pd.DataFrame | None:
            if self.store.meta(self.store.separability_path()) is None:
                return None
            return self.store.read_separability()

        return self.derived(("separability table",), read)

    def value_counts(self, attribute: str, space: SpaceKey | None = None) -> pd.Series:
        """How many images have each value of a categorical attribute, most frequent first."""
        def count() -> pd.Series:
            counts = self.column(attribute, space).value_counts(sort=True)
            return counts[counts > 0]

        return self._counts.get((attribute, space if attribute == CLUSTER else None), count)

    # ------------------------------------------------------------------ filters
    def filter_mask(self, filters: dict[str, list[str]], search: str,
                    space: SpaceKey | None = None) -> np.ndarray | None:
        """Rows matching every attribute filter and the text search (None: no filter set)."""
        mask = None
        for attribute, values in filters.items():
            if values and attribute in self.kinds:
                keep = self.column(attribute, space).isin(values).to_numpy()
                mask = keep if mask is None else mask & keep
        if search.strip():
            found = np.zeros(len(self.table), dtype=bool)
            for attribute in self.attributes_of(TEXT) + self.attributes_of(CATEGORICAL):
                if attribute == CLUSTER:
                    continue
                column = self.column(attribute).astype("string")
                found |= column.str.contains(search.strip(), case=False, regex=False).to_numpy(
                    dtype=bool, na_value=False
                )
            mask = found if mask is None else mask & found
        return mask

    # ------------------------------------------------------------------ images
    def thumbnail_uri(self, row: int) -> str:
        """A `data:` URI of the image's thumbnail, read from the store by row (never by path)."""
        data = base64.b64encode(self.store.read_thumbnail(int(row))).decode("ascii")
        return f"data:image/jpeg;base64,{data}"

    def thumbnail_pixels(self, row: int, side: int) -> np.ndarray:
        """The image's thumbnail scaled to fit a `side` × `side` square, as RGB pixels
        (uint8); decoded once per process for each size."""

        def decode() -> np.ndarray:
            from PIL import Image  # only when a view is drawn with its images

            with Image.open(io.BytesIO(self.store.read_thumbnail(int(row)))) as image:
                small = image.convert("RGB")
                small.thumbnail((side, side))
                return np.asarray(small)

        return self._thumbnails.get((int(row), side), decode)

    def describe(self, row: int, space: SpaceKey | None = None) -> dict[str, str]:
        """The image's attributes as display strings (not yet HTML-escaped)."""
        described = {}
        for attribute, kind in self.kinds.items():
            value = self.column(attribute, space).iloc[int(row)]
            if kind == NUMERIC and attribute in self.shares:
                described[attribute] = MISSING if pd.isna(value) else f"{value:.0%}"
            elif kind == NUMERIC:
                described[attribute] = MISSING if pd.isna(value) else f"{value:g}"
            else:
                described[attribute] = str(value)
        return described

    def sample_id(self, row: int) -> str:
        return str(self.column(ID_COLUMN).iloc[int(row)])

    @property
    def id_numbers(self) -> np.ndarray:
        """Every image's sample id (16 hex digits) as an unsigned 64-bit number, by row."""
        return self.derived(("id numbers",), lambda: id_numbers(self.column(ID_COLUMN)))

    @staticmethod
    def id_number(sample_id: str) -> np.ndarray:
        """One sample id as an array of its number, or an empty array for text that is not
        a sample id."""
        return id_numbers(pd.Series([sample_id])) if SAMPLE_ID.fullmatch(sample_id or "") \
            else np.empty(0, dtype=np.uint64)

    def rows_of_ids(self, numbers: np.ndarray) -> np.ndarray:
        """The rows (sorted) of the images with these sample-id numbers; unknown ids are
        left out."""
        order = self.derived(("id order",), lambda: np.argsort(self.id_numbers))
        ordered = self.id_numbers[order]
        found = np.clip(np.searchsorted(ordered, numbers), 0, max(len(ordered) - 1, 0))
        known = ordered[found] == numbers if len(ordered) else np.zeros(len(numbers), bool)
        return np.unique(order[found[known]]).astype(np.int64)

    # ------------------------------------------------------------------ neighbours
    def neighbours(self, space: SpaceKey, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest images to image `row` in the full feature space (cosine, FAISS):
        rows and similarities, the image itself first (an exact copy may tie with it)."""
        vector = self.store.load_embeddings(space)[int(row)].astype(np.float32)
        rows, similarities = self.search_vector(space, vector, k + 1)
        others = rows != row
        own = similarities[~others][:1] if not others.all() else similarities[:1]
        return (np.concatenate([[int(row)], rows[others][:k - 1]]),
                np.concatenate([own, similarities[others][:k - 1]]))

    def search_vector(self, space: SpaceKey, vector: np.ndarray, k: int
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` images nearest to an embedding of `space` (cosine): through its FAISS
        index, or before the index stage has made it (a store still being built) by an exact
        search of its embeddings a chunk at a time."""
        import faiss

        query = vector.reshape(1, -1).astype(np.float32)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        if not self.store.meta(self.store.index_path(space)):
            from precompute.stages.index import exact_neighbours

            embeddings = self.store.load_embeddings(space)
            rows = exact_neighbours(query, embeddings, k)[0]
            rows = rows[rows >= 0]
            return rows.astype(np.int64), normalised(embeddings[rows]) @ query[0]
        index = self._indexes.get(
            space, lambda: faiss.read_index(str(self.store.index_path(space))))
        similarities, rows = index.search(query, k)
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), similarities[0][keep]


def id_numbers(ids: pd.Series) -> np.ndarray:
    """Sample ids (16 hex digits each) as unsigned 64-bit numbers, in one pass over their
    bytes."""
    return np.frombuffer(bytes.fromhex("".join(ids.astype(str))), dtype=">u8").astype(np.uint64)


def scaled_to_map(projected: np.ndarray, scale: tuple[np.ndarray, float]) -> np.ndarray:
    """Projection coordinates (N × 2) → map coordinates, given the projection's `map_scale`."""
    centre, half = scale
    return ((np.asarray(projected, dtype=np.float32) - centre) / half).astype(np.float32)


def load_explorer_data(root: str, dask: str | None = None) -> ExplorerData:
    """Open the store at `root` once per process and state of the store: every session shares
    the result, and one opened after a running build has landed more gets it too
    (explorer/build_status.py). With `dask` (a scheduler address, or "local" for a cluster in
    this process) the map's image is aggregated through Dask (explorer/dask_points.py)."""
    return _load_explorer_data(root, dask, store_stamp(root))


@pn.cache(max_items=4)
def _load_explorer_data(root: str, dask: str | None, stamp: tuple) -> ExplorerData:
    """The store at `root` as it is in the state `stamp` names."""
    store = Store.open(root)
    meta = store.images_meta()
    kinds = dict(meta["attributes"])
    table = store.read_images([ID_COLUMN, PATH_COLUMN, *kinds])
    for attribute, kind in kinds.items():
        if kind == CATEGORICAL:
            table[attribute] = table[attribute].astype("category")
    shares = set()
    for model, tag in run_tags(store).items():
        columns, prediction_kinds = prediction_attributes(store, model, tag)
        for name in [c for c in columns if c in table]:  # the target's split, seen before
            if table[name].astype(str).equals(columns[name].astype(str)):
                columns = columns.drop(columns=[name])  # the runs share it: shown once
            else:
                columns = columns.rename(columns={name: f"{name}{tag}"})
                prediction_kinds[f"{name}{tag}"] = prediction_kinds[name]
        table = pd.concat([table, columns], axis=1)
        kinds.update({name: prediction_kinds[name] for name in columns})
        shares |= {name for name, kind in prediction_kinds.items() if kind == NUMERIC}
    issues = quality_issues(store)
    if issues is not None:
        table[QUALITY] = quality_column(issues, table[ID_COLUMN])
        kinds[QUALITY] = CATEGORICAL
    methods = {space: store.projection_methods(space) for space in store.spaces()}
    if any(store.meta(store.clusters_path(space)) for space in methods):
        kinds[CLUSTER] = CATEGORICAL
    trust = {(space, method): store.meta(store.projection_path(space, method)).get("trust", {})
             for space, names in methods.items() for method in names}
    depth_labels = {space: label for space in methods
                    if (label := store.meta(store.embeddings_path(space)).get("depth_label"))}
    return ExplorerData(store, table, kinds, methods, dask, issues, trust, frozenset(shares),
                        has_thumbnails=store.meta(store.thumbs_path) is not None,
                        depth_labels=depth_labels, stamp=stamp)


def run_tags(store: Store) -> dict[str, str]:
    """Each finished training run and what tells its prediction attributes apart: nothing
    when it is its target's only run, else ` · <backbone> <mode or run name>`."""
    targets = {model: store.meta(store.predictions_path(model))["target"]
               for model in store.finetuned_models()}
    tags = {}
    for model, target in targets.items():
        backbone, _, run = model.partition("/")
        several = sum(t == target for t in targets.values()) > 1
        tags[model] = f" · {backbone} {run.removeprefix(f'finetuned-{target}-')}" if several \
            else ""
    return tags


def prediction_attributes(store: Store, model: str, tag: str = ""
                          ) -> tuple[pd.DataFrame, dict[str, str]]:
    """A training run's per-image predictions as attributes, so the map can be coloured,
    filtered and selected by them: `predicted <target>`, `<target> correct` (yes/no),
    `<target> confidence` (each ending in the run's `tag`) and `<target> split`
    (train/val/test/unlabelled)."""
    target = store.meta(store.predictions_path(model))["target"]
    predictions = pd.read_parquet(store.predictions_path(model))
    columns = pd.DataFrame({
        predicted_name(target, tag): predictions["predicted"].astype(str).astype("category"),
        correct_name(target, tag): pd.Categorical(
            np.where(predictions["correct"].to_numpy(dtype=bool), "yes", "no"),
            categories=["no", "yes"]),
        confidence_name(target, tag): predictions["confidence"].astype(np.float64),
        split_name(target): predictions["split"].astype(str).astype("category"),
    })
    kinds = {name: CATEGORICAL for name in columns}
    kinds[confidence_name(target, tag)] = NUMERIC
    return columns, kinds


def quality_issues(store: Store) -> pd.DataFrame | None:
    """The quality stage's flagged images (quality/issues.parquet), or None before it ran."""
    if store.meta(store.quality_path()) is None:
        return None
    return pd.read_parquet(store.quality_path())


def quality_column(issues: pd.DataFrame, ids: pd.Series) -> pd.Series:
    """Each image's most serious flag as an attribute (`quality`), so the map can be coloured,
    filtered and selected by it: split_leak, near_duplicate, label_issue, outlier or none."""
    rank = {kind: number for number, kind in enumerate(QUALITY_KINDS)}
    worst = (issues.assign(rank=issues["kind"].map(rank)).sort_values("rank", kind="stable")
             .drop_duplicates("sample_id").set_index("sample_id")["kind"])
    values = ids.map(worst).fillna(NO_ISSUE).astype(str)
    return pd.Series(pd.Categorical(values, categories=[*QUALITY_KINDS, NO_ISSUE]),
                     index=ids.index)


def predicted_name(target: str, tag: str = "") -> str:
    return f"predicted {target}{tag}"


def confidence_name(target: str, tag: str = "") -> str:
    return f"{target} confidence{tag}"


def correct_name(target: str, tag: str = "") -> str:
    return f"{target} correct{tag}"


def split_name(target: str) -> str:
    return f"{target} split"


def store_ready(root: str | Path) -> bool:
    """Whether `root` holds a store with at least one projection to show."""
    if not Store.exists(root):
        return False
    store = Store.open(root)
    return any(store.projection_methods(space) for space in store.spaces())
