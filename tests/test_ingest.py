"""Ingestion: folder trees, CSV/Parquet manifests, category trees, and a corpus of bad files."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from precompute.config import CategoryTreeConfig, DatasetConfig
from precompute.errors import ConfigError
from precompute.stages.ingest import run_ingest
from precompute.store import (
    HEIGHT_COLUMN,
    ID_COLUMN,
    MISSING,
    PATH_COLUMN,
    WIDTH_COLUMN,
    Store,
)
from tests.helpers import sample_paintings

PATTERN = r"^(?P<artist>[^_]+)_(?P<title>.*?)(?:-(?P<year>\d{4}))?$"


def ingest(config: DatasetConfig, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    store = Store.create(tmp_path / "store")
    run_ingest(config, store)
    return store.read_images(), store.read_rejected(), store.images_meta()


def test_folder_tree_gives_attributes_from_levels_and_file_name(small_tree, tmp_path):
    config = DatasetConfig(root=str(small_tree), levels=["style"], filename_pattern=PATTERN)
    images, rejected, meta = ingest(config, tmp_path)

    assert len(images) == 66 and rejected.empty
    row = images[images[PATH_COLUMN].str.startswith("Baroque/")].head(1)
    path = Path(row[PATH_COLUMN].iloc[0])
    artist, _, rest = path.stem.partition("_")
    assert row["style"].iloc[0] == path.parent.name == "Baroque"
    assert row["artist"].iloc[0] == artist
    assert rest.startswith(row["title"].iloc[0])
    assert images["style"].nunique() == 11
    assert meta["attributes"] == {
        "style": "categorical", "artist": "categorical", "title": "text", "year": "numeric",
    }
    assert images[WIDTH_COLUMN].eq(224).all() and images[HEIGHT_COLUMN].eq(224).all()


def test_sample_ids_are_stable_across_runs(small_tree, tmp_path):
    config = DatasetConfig(root=str(small_tree), levels=["style"])
    first, _, _ = ingest(config, tmp_path / "a")
    second, _, _ = ingest(config, tmp_path / "b")
    assert first[ID_COLUMN].is_unique
    assert first[ID_COLUMN].tolist() == second[ID_COLUMN].tolist()


def test_a_level_pattern_reads_attributes_from_folder_names(tmp_path):
    """`n0042-Baroque/` read as style = Baroque (and code = 0042), the way ImageNet-style
    folders carry a code before the name."""
    for number, path in enumerate(sample_paintings(per_style=2)):
        target = tmp_path / "tree" / f"n{number // 2:04d}-{path.parent.name}" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    config = DatasetConfig(root=str(tmp_path / "tree"),
                           levels=[r"^n(?P<code>\d+)-(?P<style>.+)$"])
    images, rejected, meta = ingest(config, tmp_path)
    assert len(images) == 22 and rejected.empty
    folders = images[PATH_COLUMN].str.split("/").str[0]
    assert meta["attributes"]["code"] == "numeric"
    assert [f"n{int(c):04d}-{s}" for c, s in zip(images["code"], images["style"], strict=True)
            ] == list(folders)
    assert images["style"].nunique() == 11 and "Baroque" in set(images["style"])


def test_an_added_image_is_noticed_and_workers_change_nothing(small_tree, tmp_path):
    tree = shutil.copytree(small_tree, tmp_path / "tree")
    store = Store.create(tmp_path / "store")
    config = DatasetConfig(root=str(tree), levels=["style"], workers=2)
    assert not run_ingest(config, store).skipped
    assert run_ingest(dataclasses.replace(config, workers=1), store).skipped
    extra = next(tree.glob("Baroque/*.jpg"))
    shutil.copy2(extra, extra.with_name("copy_" + extra.name))
    again = run_ingest(config, store)
    assert not again.skipped and again.accepted == 67


def test_csv_manifest_with_path_template_and_category_tree(tmp_path):
    """Rakuten-style: image_{imageid}_product_{productid}.jpg plus a category-path column."""
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    rows = []
    trees = ['["Home >> Decor >> Clocks"]', '["Home >> Kitchen"]', "Toys >> Puzzles >> 3D"]
    for i, painting in enumerate(sample_paintings(1)[:6]):
        shutil.copy2(painting, images_dir / f"image_{1000 + i}_product_{50 + i}.jpg")
        rows.append(
            {"imageid": 1000 + i, "productid": 50 + i, "title": f"Product <{i}>",
             "category": trees[i % 3]}
        )
    manifest = tmp_path / "products.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    config = DatasetConfig(
        root=str(images_dir),
        manifest=str(manifest),
        path_template="image_{imageid}_product_{productid}.jpg",
        category_tree=CategoryTreeConfig(column="category", levels=["top", "middle", "leaf"]),
    )
    images, rejected, meta = ingest(config, tmp_path)

    assert rejected.empty and len(images) == 6
    assert images[PATH_COLUMN].iloc[0] == "image_1000_product_50.jpg"
    assert images[["top", "middle", "leaf"]].iloc[0].tolist() == ["Home", "Decor", "Clocks"]
    assert images[["top", "middle", "leaf"]].iloc[1].tolist() == ["Home", "Kitchen", MISSING]
    assert images[["top", "middle", "leaf"]].iloc[2].tolist() == ["Toys", "Puzzles", "3D"]
    assert "category" not in images.columns
    assert meta["attributes"]["imageid"] == "numeric"
    assert images["title"].iloc[3] == "Product <3>"


def test_parquet_manifest_with_path_column(tmp_path):
    paintings = sample_paintings(1)[:4]
    table = pd.DataFrame(
        {
            "file": [str(p) for p in paintings],  # absolute paths are allowed
            "style": [p.parent.name for p in paintings],
            "bytes": [p.stat().st_size for p in paintings],
        }
    )
    manifest = tmp_path / "manifest.parquet"
    table.to_parquet(manifest)
    config = DatasetConfig(
        manifest=str(manifest), path_column="file", ignore_columns=["bytes"], root="/"
    )
    images, rejected, meta = ingest(config, tmp_path)
    assert rejected.empty and len(images) == 4
    assert list(meta["attributes"]) == ["style"]


def test_unknown_manifest_column_is_a_clear_error(tmp_path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"image": ["a.jpg"], "label": ["x"]}).to_csv(manifest, index=False)
    config = DatasetConfig(root=str(tmp_path), manifest=str(manifest))
    with pytest.raises(ConfigError, match=r"no column 'path'.*path_column.*image, label"):
        ingest(config, tmp_path)


# ---------------------------------------------------------------------------- bad-file corpus
def _jpeg(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def _png(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save)
    return buffer.getvalue()


def build_bad_corpus(folder: Path) -> list[dict]:
    """Files of every awkward kind, with what ingestion must do with each."""
    painting = sample_paintings(1)[0]
    real = painting.read_bytes()
    photo = Image.open(painting).convert("RGB")  # 224 × 224
    wide = photo.resize((300, 200))

    cases = []
    outside = folder.parent / "outside"
    outside.mkdir()
    (outside / "x.jpg").write_bytes(real)

    def add(name: str, data: bytes | None, expect: str, label: object = None, **checks):
        if data is not None:
            (folder / name).write_bytes(data)
        label = "ab"[len(cases) % 2] if label is None else label  # two classes to train on
        cases.append({"path": name, "label": label, "expect": expect, **checks})

    corrupt = bytearray(real)
    middle = slice(len(corrupt) // 3, len(corrupt) // 3 + 400)
    corrupt[middle] = bytes((b * 7 + 13) % 256 for b in corrupt[middle])  # scrambled entropy data
    add("corrupt.jpg", bytes(corrupt), "corrupt image")
    add("truncated.jpg", real[: len(real) // 2], "truncated file")
    add("empty.jpg", b"", "empty file")
    add("notes.jpg", b"this is a text file, not a picture\n" * 20, "not an image")
    add("missing.jpg", None, "missing file")
    add("cmyk.jpg", _jpeg(photo.convert("CMYK")), "accepted", size=(224, 224))
    grey16 = np.linspace(0, 65535, 64 * 48, dtype=np.uint16).reshape(48, 64)
    add("grey16.png", _png(Image.fromarray(grey16)), "accepted", size=(64, 48))
    palette = Image.new("P", (40, 30))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.info["transparency"] = 0
    add("palette_alpha.png", _png(palette, transparency=0), "accepted", size=(40, 30))
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    add("animated.gif", gif.getvalue(), "accepted", size=(32, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    add("rotated.jpg", _jpeg(wide, exif=exif), "accepted", size=(200, 300))
    add("huge.png", _png(Image.new("RGB", (400, 300), "white")), "too many pixels")
    add("peinture_été_漢字.jpg", real, "accepted", size=(224, 224))
    add("it's \"quoted\", really.jpg", real, "accepted", size=(224, 224))
    add("no_label.jpg", real, "accepted", label="", size=(224, 224))
    add("nan_label.jpg", real, "accepted", label="NaN", size=(224, 224))
    add("only_one_of_its_class.jpg", real, "accepted", label="lonely", size=(224, 224))
    add("", None, "no image path")
    add("   ", None, "no image path")
    add("cmyk.jpg", None, "duplicate path")
    add("../outside/x.jpg", None, "outside the dataset folder")
    add(str(outside / "x.jpg"), None, "outside the dataset folder")
    (folder / "link_out.jpg").symlink_to(outside / "x.jpg")
    add("link_out.jpg", None, "outside the dataset folder")
    (folder / "link_in.jpg").symlink_to(folder / "cmyk.jpg")
    add("link_in.jpg", None, "accepted", size=(224, 224))
    return cases


def write_bad_manifest(tmp_path: Path) -> tuple[Path, Path, list[dict]]:
    """The bad-file corpus in `tmp_path/corpus` and a CSV manifest listing every case."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    cases = build_bad_corpus(folder)
    manifest = tmp_path / "corpus.csv"
    pd.DataFrame([{"path": c["path"], "label": c["label"]} for c in cases]).to_csv(
        manifest, index=False
    )
    return folder, manifest, cases


def test_bad_files_are_rejected_with_reasons_or_converted(tmp_path):
    folder, manifest, cases = write_bad_manifest(tmp_path)
    config = DatasetConfig(root=str(folder), manifest=str(manifest), max_pixels=100_000)
    images, rejected, meta = ingest(config, tmp_path)

    assert len({c["expect"] for c in cases} | {c["path"] for c in cases}) >= 20
    reasons = {int(row): reason for row, reason in zip(rejected["row"], rejected["reason"],
                                                        strict=True)}
    for line, case in enumerate(cases, start=2):  # the header is line 1
        if case["expect"] == "accepted":
            row = images[images[PATH_COLUMN] == case["path"]]
            assert len(row) == 1, f"{case['path']}: {reasons.get(line)}"
            size = (row[WIDTH_COLUMN].iloc[0], row[HEIGHT_COLUMN].iloc[0])
            assert size == case["size"], case["path"]
        else:
            assert reasons.get(line) == case["expect"], case["path"]
    rejects = sum(c["expect"] != "accepted" for c in cases)
    assert meta["rejected"] == rejects and sum(meta["reasons"].values()) == rejects
    labels = images.set_index(PATH_COLUMN)["label"]
    assert labels["no_label.jpg"] == MISSING
    assert labels["nan_label.jpg"] == "NaN"  # a label as written, not a missing value


def test_paths_outside_the_dataset_folder_are_accepted_only_when_allowed(tmp_path):
    folder, manifest, cases = write_bad_manifest(tmp_path)
    config = DatasetConfig(root=str(folder), manifest=str(manifest), max_pixels=100_000,
                           allow_outside_root=True)
    images, rejected, _ = ingest(config, tmp_path)
    outside = [c["path"] for c in cases if c["expect"] == "outside the dataset folder"]
    assert len(outside) == 3 and set(outside) <= set(images[PATH_COLUMN])
    assert "outside the dataset folder" not in set(rejected["reason"])


def test_a_symlink_in_a_folder_tree_may_not_lead_outside_it(small_tree, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(small_tree, tree)
    elsewhere = tmp_path / "elsewhere.jpg"
    shutil.copy(sample_paintings(1)[0], elsewhere)
    (tree / "Baroque" / "Somebody_escape.jpg").symlink_to(elsewhere)
    images, rejected, _ = ingest(DatasetConfig(root=str(tree), levels=["style"]), tmp_path)
    assert len(images) == 66
    assert rejected[["source", "reason"]].values.tolist() == [
        ["Baroque/Somebody_escape.jpg", "outside the dataset folder"]]


def test_nan_is_a_label_in_text_columns_and_no_value_in_numeric_ones(small_tree, tmp_path):
    paths = sorted(p.relative_to(small_tree).as_posix() for p in small_tree.rglob("*.jpg"))[:6]
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": paths, "grade": ["NaN", "A", "B", "A", "B", "A"],
                  "score": ["1.5", "NaN", "2", "", "3", "n/a"]}).to_csv(manifest, index=False)
    images, _, meta = ingest(DatasetConfig(root=str(small_tree), manifest=str(manifest)),
                             tmp_path)
    assert meta["attributes"] == {"grade": "categorical", "score": "numeric"}
    assert images["grade"].tolist() == ["NaN", "A", "B", "A", "B", "A"]
    assert images["score"].isna().tolist() == [False, True, False, True, False, True]


def test_a_build_over_the_bad_corpus_finishes(tmp_path):
    from precompute.cli import main

    folder, manifest, cases = write_bad_manifest(tmp_path)
    config = tmp_path / "corpus.toml"
    config.write_text(f"""
[dataset]
root = "{folder.as_posix()}"
manifest = "{manifest.as_posix()}"
max_pixels = 100000
[model]
backbone = "efficientnet_lite0"
image_size = 64
[embed]
layers = ["penultimate"]
workers = 0
[train]
target = "label"
epochs = 2
[projection]
methods = ["pca"]
[cluster]
k_max = 3
[analysis]
min_class_size = 2
shuffles = 2
probe_shuffles = 1
bootstrap = 20
""", encoding="utf-8")
    store = tmp_path / "store"
    assert main(["-q", "all", "--config", str(config), "--store", str(store)]) == 0
    accepted = sum(c["expect"] == "accepted" for c in cases)
    assert len(Store.open(store).read_images()) == accepted


def test_converted_images_have_the_right_pixels(tmp_path):
    from precompute.images import DecodeOptions, open_rgb

    cases = build_bad_corpus(tmp_path)
    assert cases  # the corpus wrote its files into tmp_path
    options = DecodeOptions()
    grey = np.asarray(open_rgb(tmp_path / "grey16.png", options))
    assert grey.dtype == np.uint8 and grey.shape == (48, 64, 3)
    assert grey[0, 0, 0] == 0 and grey[-1, -1, 0] == 255  # scaled from 16 bits, not clipped
    assert 100 < grey[24, 32, 0] < 160
    palette = np.asarray(open_rgb(tmp_path / "palette_alpha.png", options))
    assert tuple(palette[0, 0]) == (255, 255, 255)  # transparent red composited onto white
    rotated = open_rgb(tmp_path / "rotated.jpg", options)
    assert rotated.size == (200, 300)
    cmyk = np.asarray(open_rgb(tmp_path / "cmyk.jpg", options)).astype(int)
    original = np.asarray(Image.open(sample_paintings(1)[0]).convert("RGB")).astype(int)
    assert np.abs(cmyk - original).mean() < 12


def test_white_border_crop_keeps_the_product(tmp_path):
    from precompute.images import DecodeOptions, open_rgb

    canvas = Image.new("RGB", (300, 200), "white")
    canvas.paste(Image.new("RGB", (100, 50), (20, 90, 160)), (120, 70))
    path = tmp_path / "product.png"
    canvas.save(path)
    cropped = open_rgb(path, DecodeOptions(crop_white_border=True))
    assert cropped.size == (100, 50)
    assert open_rgb(path, DecodeOptions()).size == (300, 200)
