"""Ingest stage: list a dataset's images with their attributes, decode each once, write the tables.

A dataset is a folder tree (attributes from folder levels and a file-name regex) or a CSV/Parquet
manifest (a path column or a path template; every other column is an attribute). Files that
cannot be used are excluded with a reason in `rejected.parquet`; the run never stops for them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
import string
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from precompute.config import DatasetConfig
from precompute.errors import ConfigError, DatasetError
from precompute.images import DecodeOptions, ImageRejected, open_rgb
from precompute.processes import dies_with_this_process
from precompute.store import (
    CATEGORICAL,
    HEIGHT_COLUMN,
    ID_COLUMN,
    MISSING,
    NUMERIC,
    PATH_COLUMN,
    RESERVED_COLUMNS,
    TEXT,
    WIDTH_COLUMN,
    Store,
    fingerprint,
    sample_id,
)

log = logging.getLogger(__name__)

OUTSIDE_ROOT = "outside the dataset folder"  # set dataset.allow_outside_root to accept these
SOURCE_ROW = "_source_row"  # manifest line of a candidate, kept only for rejection reports
# in a numeric column these stand for no value; in any other column they are labels as written
NUMERIC_MISSING = frozenset({"nan", "na", "n/a", "null", "none", "-"})
MAX_CATEGORIES = 1000  # more distinct values than this means free text…
MAX_DISTINCT_SHARE = 0.8  # …and so does nearly one value per image (titles, descriptions)


@dataclass
class IngestSummary:
    accepted: int
    rejected: int
    reasons: dict[str, int]
    skipped: bool = False

    def line(self) -> str:
        """One summary line for the end of the run."""
        if self.skipped:
            return f"ingest: up to date ({self.accepted} images, {self.rejected} rejected)"
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.reasons.items()))
        return f"ingest: {self.accepted} images accepted, {self.rejected} rejected" + (
            f" ({why})" if why else ""
        )


# Settings that change how fast ingestion runs, not what it finds.
NOT_IN_RECIPE = ("workers",)


def run_ingest(config: DatasetConfig, store: Store, force: bool = False) -> IngestSummary:
    """Ingest the dataset described by `config` into `store` unless it is already there: same
    settings and the same listing of candidate files (paths and attributes), so an added or
    removed image, or an edited manifest, is noticed."""
    candidates = list_manifest(config) if config.manifest else list_tree(config)
    recipe = {
        "dataset": {k: v for k, v in asdict(config).items() if k not in NOT_IN_RECIPE},
        "listing": listing_fingerprint(candidates),
    }
    if not force and store.is_current(store.images_path, recipe):
        meta = store.images_meta()
        return IngestSummary(meta["count"], meta["rejected"], meta["reasons"], skipped=True)

    candidates, unlisted = _split_unlisted(candidates)
    options = DecodeOptions(config.max_pixels, config.crop_white_border)
    root = Path(config.root)
    results = validate_images(
        [root / p for p in candidates[PATH_COLUMN]], options, config.workers or os.cpu_count() or 1,
        inside=None if config.allow_outside_root else root,
    )
    ok = np.array([isinstance(result, tuple) for result in results], dtype=bool)
    rejected = pd.concat(
        [
            unlisted,
            pd.DataFrame(
                {
                    "source": candidates[PATH_COLUMN][~ok],
                    "row": candidates[SOURCE_ROW][~ok],
                    "reason": [r for r in results if isinstance(r, str)],
                }
            ),
        ],
        ignore_index=True,
    )
    accepted = candidates[ok].reset_index(drop=True)
    sizes = [r for r in results if isinstance(r, tuple)]
    accepted[WIDTH_COLUMN] = pd.array([w for w, _ in sizes], dtype="int32")
    accepted[HEIGHT_COLUMN] = pd.array([h for _, h in sizes], dtype="int32")
    accepted.insert(0, ID_COLUMN, [sample_id(p) for p in accepted[PATH_COLUMN]])
    accepted = accepted.drop(columns=[SOURCE_ROW])
    if accepted.empty:
        raise DatasetError(
            f"no usable images under {config.root}: all {len(rejected)} candidates were rejected "
            f"({_count_reasons(rejected)}); check dataset.root and the file extensions"
        )
    kinds = attribute_kinds(accepted, config)
    accepted = normalise_attributes(accepted, kinds)

    reasons = _count_reasons(rejected)
    rejected = rejected.astype({"source": "string", "reason": "string"})
    rejected["row"] = rejected["row"].astype("Int64")
    store.write_table(store.rejected_path, rejected)
    store.write_table(store.images_path, accepted)
    store.commit(
        store.images_path,
        recipe,
        count=len(accepted),
        rejected=len(rejected),
        reasons=reasons,
        attributes=kinds,
        root=config.root,
        fingerprint=fingerprint(accepted[ID_COLUMN]),
        decode=asdict(options),
    )
    return IngestSummary(len(accepted), len(rejected), reasons)


# ------------------------------------------------------------------------------ listing
def listing_fingerprint(candidates: pd.DataFrame) -> str:
    """A short hash of the candidate files and their attributes (names and values), in order.
    Listing costs a walk of the tree or a read of the manifest on every run; a changed file
    under an unchanged name is not noticed."""
    rows = pd.util.hash_pandas_object(candidates.astype("string"), index=False)
    digest = hashlib.sha1("\0".join(candidates.columns).encode("utf-8"))
    digest.update(rows.to_numpy().tobytes())
    return digest.hexdigest()[:16]


def list_tree(config: DatasetConfig) -> pd.DataFrame:
    """Candidates from a folder tree: folder levels and file-name groups become attributes."""
    root = Path(config.root)
    if not root.is_dir():
        raise DatasetError(f"dataset.root {root} is not a folder")
    pattern = _compile_pattern(config.filename_pattern, "dataset.filename_pattern")
    levels = [(entry, _compile_pattern(entry, "dataset.levels") if "(?P<" in entry else None)
              for entry in config.levels]
    extensions = {e.lower() for e in config.extensions}
    rows, unmatched, unmatched_folders, skipped = [], 0, 0, 0
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            continue
        if path.suffix.lower() not in extensions or path.name.startswith("."):
            skipped += 1
            continue
        relative = path.relative_to(root)
        folders = relative.parts[:-1]
        row = {PATH_COLUMN: relative.as_posix(), SOURCE_ROW: None}
        for level, (name, level_pattern) in enumerate(levels):
            folder = folders[level] if level < len(folders) else None
            if level_pattern is None:
                row[name] = folder
                continue
            match = level_pattern.match(folder) if folder is not None else None
            unmatched_folders += folder is not None and match is None
            for group in level_pattern.groupindex:
                row[group] = match.group(group) if match else None
        if pattern is not None:
            match = pattern.match(path.stem)
            unmatched += match is None
            for group in pattern.groupindex:
                row[group] = match.group(group) if match else None
        rows.append(row)
    if skipped:
        log.info("ignored %d files without an image extension under %s", skipped, root)
    if unmatched:
        log.warning(
            "%d file names did not match dataset.filename_pattern; their attributes are %s",
            unmatched,
            MISSING,
        )
    if unmatched_folders:
        log.warning("%d images are in folders that do not match their dataset.levels pattern; "
                    "those attributes are %s", unmatched_folders, MISSING)
    if not rows:
        raise DatasetError(
            f"no files with extensions {', '.join(sorted(extensions))} under {root}"
        )
    level_columns = [c for name, lp in levels for c in (lp.groupindex if lp else [name])]
    columns = [PATH_COLUMN, SOURCE_ROW, *level_columns, *(pattern.groupindex if pattern else [])]
    return pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))


def list_manifest(config: DatasetConfig) -> pd.DataFrame:
    """Candidates from a CSV/Parquet manifest: one image per row, other columns as attributes."""
    manifest = Path(config.manifest or "")
    if not manifest.is_file():
        raise DatasetError(f"manifest {manifest} does not exist")
    try:
        if manifest.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(manifest).astype("string")
        else:
            # only an empty cell is missing: "NaN" or "None" may be a label (numbers: below)
            table = pd.read_csv(manifest, dtype="string", keep_default_na=False, na_values=[""])
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise DatasetError(f"manifest {manifest} cannot be read: {exc}") from exc
    header_lines = 0 if manifest.suffix.lower() in (".parquet", ".pq") else 1
    source_rows = pd.Series(range(1 + header_lines, len(table) + 1 + header_lines))

    if config.path_template:
        paths = _format_template(table, config.path_template, manifest)
        drop = set()  # template fields (ids) stay attributes
    else:
        column = config.path_column or "path"
        if column not in table.columns:
            raise ConfigError(
                f"manifest {manifest} has no column {column!r}; set dataset.path_column to the "
                f"column holding image paths, or dataset.path_template "
                f"(columns: {', '.join(table.columns)})"
            )
        paths, drop = table[column], {column}
    drop |= set(config.ignore_columns)
    unknown = set(config.ignore_columns) - set(table.columns)
    if unknown:
        raise ConfigError(
            f"dataset.ignore_columns names {', '.join(sorted(unknown))}, not in {manifest}"
        )
    attributes = table.drop(columns=list(drop))
    if config.category_tree:
        attributes = split_category_tree(attributes, config.category_tree.column,
                                         config.category_tree.separator,
                                         config.category_tree.levels, manifest)
    clash = set(attributes.columns) & set(RESERVED_COLUMNS)
    if clash:
        raise ConfigError(
            f"manifest {manifest} has column(s) {', '.join(sorted(clash))}, reserved by the "
            "store; list them in dataset.ignore_columns or rename them"
        )
    paths = paths.str.strip().replace("", pd.NA)
    candidates = attributes.assign(**{PATH_COLUMN: paths, SOURCE_ROW: source_rows.to_numpy()})
    return candidates[[PATH_COLUMN, SOURCE_ROW, *attributes.columns]]


def split_category_tree(
    table: pd.DataFrame, column: str, separator: str, levels: list[str], source: Path
) -> pd.DataFrame:
    """Replace a category-path column (`["Home >> Decor >> Clocks"]`) by one column per level."""
    if column not in table.columns:
        raise ConfigError(f"dataset.category_tree.column {column!r} is not a column of {source}")
    paths = [_category_path(value, separator) for value in table[column]]
    depth = max((len(p) for p in paths), default=0)
    names = levels or [f"{column}_{level + 1}" for level in range(depth)]
    split = pd.DataFrame(
        [[p[i] if i < len(p) else None for i in range(len(names))] for p in paths],
        columns=names,
        index=table.index,
        dtype="string",
    )
    position = table.columns.get_loc(column)
    rest = table.drop(columns=[column])
    return pd.concat([rest.iloc[:, :position], split, rest.iloc[:, position:]], axis=1)


def _category_path(value: object, separator: str) -> list[str]:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return []
    text = str(value).strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            try:
                items = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                items = [text.strip("[]'\" ")]
        text = str(items[0]) if items else ""
    return [part.strip() for part in text.split(separator) if part.strip()]


def _format_template(
    table: pd.DataFrame, template: str, manifest: Path
) -> pd.Series:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = fields - set(table.columns)
    if missing:
        raise ConfigError(
            f"dataset.path_template uses {', '.join(sorted(missing))}, not columns of {manifest}"
        )
    values = table[sorted(fields)]
    incomplete = values.isna().any(axis=1)
    paths = [
        None if bad else template.format(**row)
        for bad, row in zip(incomplete, values.to_dict("records"), strict=True)
    ]
    return pd.Series(paths, dtype="string")


def _compile_pattern(pattern: str | None, setting: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{setting} {pattern!r} is not a regex: {exc}") from exc
    if not compiled.groupindex:
        raise ConfigError(
            f"{setting} {pattern!r} has no named groups such as (?P<artist>…)"
        )
    return compiled


def _split_unlisted(candidates: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Set aside manifest rows with no path, and repeats of a path already listed."""
    no_path = candidates[PATH_COLUMN].isna().to_numpy()
    duplicated = candidates[PATH_COLUMN].duplicated(keep="first").to_numpy() & ~no_path
    rejected = pd.DataFrame(
        {
            "source": candidates[PATH_COLUMN][no_path | duplicated],
            "row": candidates[SOURCE_ROW][no_path | duplicated],
            "reason": np.where(no_path, "no image path", "duplicate path")[no_path | duplicated],
        }
    )
    for row in rejected.itertuples():
        log.warning("manifest line %s: %s %s", row.row, row.reason,
                    "" if pd.isna(row.source) else row.source)
    return candidates[~(no_path | duplicated)].reset_index(drop=True), rejected


# ------------------------------------------------------------------------------ validation
def validate_images(
    paths: list[Path], options: DecodeOptions, workers: int, inside: Path | None = None
) -> list[tuple[int, int] | str]:
    """Decode every image once, in parallel: (width, height) when usable, else the reason.
    With `inside`, a path that resolves (symlinks followed) outside that folder is rejected."""
    chunksize = max(1, min(64, len(paths) // (workers * 8) or 1))
    jobs = [(path, options, inside) for path in paths]
    with ProcessPoolExecutor(max_workers=workers, initializer=dies_with_this_process()) as pool:
        results = list(
            tqdm(
                pool.map(_validate_one, jobs, chunksize=chunksize),
                total=len(jobs),
                desc="validate images",
                unit="img",
            )
        )
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, str):
            log.info("rejected %s: %s", path, result)
    return results


def _validate_one(job: tuple[Path, DecodeOptions, Path | None]) -> tuple[int, int] | str:
    path, options, inside = job
    if inside is not None and not path.resolve().is_relative_to(inside.resolve()):
        return OUTSIDE_ROOT
    try:
        return open_rgb(path, options).size
    except ImageRejected as exc:
        return exc.reason


# ------------------------------------------------------------------------------ attributes
def attribute_kinds(table: pd.DataFrame, config: DatasetConfig) -> dict[str, str]:
    """Classify each attribute as numeric, categorical or free text."""
    kinds = {}
    attributes = [c for c in table.columns if c not in RESERVED_COLUMNS]
    unknown = (set(config.categorical) | set(config.text)) - set(attributes)
    if unknown:
        raise ConfigError(
            f"dataset.categorical/text name {', '.join(sorted(unknown))}, which are not "
            f"attributes (attributes: {', '.join(attributes)})"
        )
    for column in attributes:
        values = table[column]
        present = values.dropna()
        if column in config.categorical:
            kinds[column] = CATEGORICAL
        elif column in config.text:
            kinds[column] = TEXT
        elif _is_numeric(present):
            kinds[column] = NUMERIC
        elif present.nunique() <= min(MAX_CATEGORIES, MAX_DISTINCT_SHARE * len(present)):
            kinds[column] = CATEGORICAL
        else:
            kinds[column] = TEXT
    return kinds


def _is_numeric(values: pd.Series) -> bool:
    """Every value a number, or a spelling of "no number" (NaN, NA, null, …) among numbers."""
    numbers = pd.to_numeric(values, errors="coerce")
    spelled_missing = values.astype("string").str.strip().str.lower().isin(NUMERIC_MISSING)
    return bool(numbers.notna().any() and (numbers.notna() | spelled_missing).all())


def normalise_attributes(table: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Numbers as float, categories as strings with missing values made explicit."""
    table = table.copy()
    for column, kind in kinds.items():
        if kind == NUMERIC:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
        else:
            text = table[column].astype("string").str.strip()
            table[column] = text.mask(text.isna() | (text == ""), MISSING)
    return table


def _count_reasons(rejected: pd.DataFrame) -> dict[str, int]:
    return dict(Counter(rejected["reason"]))
