"""Read-only store data shared by every browser session of one server process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn

from precompute.store import CATEGORICAL, ID_COLUMN, NUMERIC, PATH_COLUMN, SpaceKey, Store

OTHER = "(other)"  # the colour of categories beyond the top N


@dataclass
class ExplorerData:
    """A store opened for exploring: the point table, its feature spaces and their projections."""

    store: Store
    table: pd.DataFrame  # one row per image: id, path and attributes
    kinds: dict[str, str]  # attribute → categorical / numeric / text
    methods: dict[SpaceKey, list[str]]  # feature space → projection methods
    _frames: dict[tuple[SpaceKey, str], pd.DataFrame] = field(default_factory=dict, repr=False)
    _colours: dict[tuple[str, int], pd.Series] = field(default_factory=dict, repr=False)

    @property
    def spaces(self) -> list[SpaceKey]:
        return [space for space, methods in self.methods.items() if methods]

    @property
    def colour_attributes(self) -> list[str]:
        """Attributes a map can be coloured by: categorical first, then numeric."""
        return [a for a, k in self.kinds.items() if k == CATEGORICAL] + [
            a for a, k in self.kinds.items() if k == NUMERIC
        ]

    def __len__(self) -> int:
        return len(self.table)

    def coords(self, space: SpaceKey, method: str) -> np.ndarray:
        """N × 2 float32 map coordinates, centred and scaled into [-1, 1] (aspect kept), so
        every method and layer shares one view extent."""
        xy = np.asarray(self.store.load_projection(space, method), dtype=np.float32)
        low, high = xy.min(axis=0), xy.max(axis=0)
        half = float((high - low).max()) / 2 or 1.0
        return (xy - (low + high) / 2) / half

    def colour_values(self, attribute: str, top: int) -> pd.Series:
        """The attribute as the colour channel: categories beyond the `top` most frequent become
        OTHER (ordered by frequency); numbers stay numbers."""
        key = (attribute, top)
        if key not in self._colours:
            values = self.table[attribute]
            if self.kinds[attribute] == NUMERIC:
                self._colours[key] = values.astype("float32")
            else:
                values = values.astype("string")
                counts = values.value_counts(sort=True)
                keep = list(counts.index[:top]) if len(counts) > top else list(counts.index)
                categories = keep + ([OTHER] if len(counts) > top else [])
                reduced = values.where(values.isin(keep), OTHER) if len(counts) > top else values
                self._colours[key] = pd.Series(
                    pd.Categorical(reduced, categories=categories), index=values.index
                )
        return self._colours[key]

    def frame(self, space: SpaceKey, method: str, attribute: str, top: int) -> pd.DataFrame:
        """Columns x, y (map coordinates) and `colour`; x/y are computed once and shared."""
        key = (space, method)
        if key not in self._frames:
            xy = self.coords(space, method)
            self._frames[key] = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]})
        return self._frames[key].assign(colour=self.colour_values(attribute, top).array)


@pn.cache(max_items=4)
def load_explorer_data(root: str) -> ExplorerData:
    """Open the store at `root` once per process; every session shares the result."""
    store = Store.open(root)
    meta = store.images_meta()
    kinds = dict(meta["attributes"])
    table = store.read_images([ID_COLUMN, PATH_COLUMN, *kinds])
    for attribute, kind in kinds.items():
        if kind == CATEGORICAL:
            table[attribute] = table[attribute].astype("category")
    methods = {space: store.projection_methods(space) for space in store.spaces()}
    return ExplorerData(store, table, kinds, methods)


def store_ready(root: str | Path) -> bool:
    """Whether `root` holds a store with at least one projection to show."""
    if not Store.exists(root):
        return False
    store = Store.open(root)
    return any(store.projection_methods(space) for space in store.spaces())
