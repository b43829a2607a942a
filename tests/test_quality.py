"""The quality stage on real paintings with injected problems: re-encoded, resized and cropped
copies are found as near-duplicates, a copy across the split is a leak, flipped labels rank
high, and an interrupted run resumes without redoing its neighbour search."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from precompute.cli import main
from precompute.config import TrainConfig
from precompute.stages.quality import same_pixels
from precompute.stats.pixels import pixel_difference, same_picture, signature
from precompute.stats.quality_checks import issue_table, label_issues, split_leaks
from precompute.stats.split import ensure_split, near_duplicate_groups, seen_in_training
from precompute.store import (
    ID_COLUMN,
    LABEL_ISSUE,
    NEAR_DUPLICATE,
    OUTLIER,
    PATH_COLUMN,
    SPLIT_LEAK,
    Store,
    sample_id,
)
from tests.helpers import kill_when

COPIES = 6
FLIPS = 6
CATALOGUE = Path(__file__).parent / "data" / "catalogue"  # four fashion_small photos


def near_copy(source: Path, kind: int) -> bytes:
    """A re-encoded, resized or 10%-cropped copy of an image."""
    image = Image.open(source).convert("RGB")
    width, height = image.size
    if kind % 3 == 1:
        image = image.resize((width * 2 // 3, height * 2 // 3))
    elif kind % 3 == 2:
        image = image.crop((width // 20, height // 20, width - width // 20, height - height // 20))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=55)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def injected(small_tree: Path, tmp_path_factory: pytest.TempPathFactory):
    """A manifest over the 66 paintings plus COPIES near-copies, with FLIPS styles changed."""
    work = tmp_path_factory.mktemp("quality")
    paths = sorted(p.relative_to(small_tree).as_posix() for p in small_tree.rglob("*.jpg"))
    rows = [{"path": p, "style": p.split("/")[0]} for p in paths]
    copies = {}
    for i, original in enumerate(paths[::11][:COPIES]):
        name = f"copies/copy{i}.jpg"
        (small_tree / "copies").mkdir(exist_ok=True)
        (small_tree / name).write_bytes(near_copy(small_tree / original, i))
        rows.append({"path": name, "style": original.split("/")[0]})
        copies[name] = original
    styles = sorted({r["style"] for r in rows})
    rng = np.random.default_rng(3)
    flipped = {}
    for i in rng.choice(len(paths), FLIPS, replace=False):
        wrong = styles[(styles.index(rows[i]["style"]) + 1 + rng.integers(len(styles) - 1))
                       % len(styles)]
        flipped[rows[i]["path"]] = wrong
        rows[i]["style"] = wrong
    pd.DataFrame(rows).to_csv(work / "manifest.csv", index=False)
    config = work / "config.toml"
    config.write_text(f"""
[dataset]
root = "{small_tree.as_posix()}"
manifest = "{(work / 'manifest.csv').as_posix()}"
[model]
backbone = "efficientnet_lite0"
[embed]
layers = ["penultimate"]
[train]
target = "style"
near_duplicates = "anywhere"  # copies may land on both sides: the leaks are what is checked
[quality]
outlier_share = 0.05
""", encoding="utf-8")
    store = work / "store"
    for stage in ("ingest", "embed", "quality"):
        assert main(["-q", stage, "--config", str(config), "--store", str(store)]) == 0
    yield Store.open(store), copies, flipped
    for name in copies:
        (small_tree / name).unlink()
    (small_tree / "copies").rmdir()


def test_every_injected_copy_is_a_near_duplicate_of_its_original(injected):
    store, copies, _ = injected
    issues = pd.read_parquet(store.quality_path())
    duplicates = issues[issues["kind"] == NEAR_DUPLICATE]
    group = dict(zip(duplicates["sample_id"], duplicates["group"], strict=True))
    for copy, original in copies.items():
        assert sample_id(copy) in group, f"{copy} not found"
        assert group[sample_id(copy)] == group.get(sample_id(original)), copy
    originals = {sample_id(p) for pair in copies.items() for p in pair}
    assert set(group) == originals  # no painting flagged that is not a copy or its original


def test_a_copy_on_the_other_side_of_the_split_is_a_leak(injected):
    store, copies, _ = injected
    parts = pd.read_parquet(store.split_path("style"))["split"].to_numpy()
    ids = store.read_images([ID_COLUMN])[ID_COLUMN].to_numpy()
    part_of = dict(zip(ids, parts, strict=True))
    expected = set()
    for copy, original in copies.items():
        a, b = sample_id(copy), sample_id(original)
        for inside, other in ((a, b), (b, a)):
            if part_of[other] == "train" and part_of[inside] in ("val", "test"):
                expected.add(inside)
    assert expected, "the split put every copy on the same side as its original"
    issues = pd.read_parquet(store.quality_path())
    assert set(issues.loc[issues["kind"] == SPLIT_LEAK, "sample_id"]) == expected


def test_flipped_labels_rank_among_the_first_label_issues(injected):
    store, _, flipped = injected
    issues = pd.read_parquet(store.quality_path())
    style = issues[(issues["kind"] == LABEL_ISSUE) & (issues["attribute"] == "style")]
    top = style.sort_values("score", ascending=False).head(2 * FLIPS)
    found = set(top["sample_id"]) & {sample_id(p) for p in flipped}
    assert len(found) >= FLIPS // 2, top
    for path, wrong in flipped.items():
        row = style[style["sample_id"] == sample_id(path)]
        if len(row):
            assert row["given"].iloc[0] == wrong


def test_info_counts_every_kind_and_outliers_are_scored(injected, capsys):
    store, _, _ = injected
    assert main(["info", str(store.root)]) == 0
    import json

    quality = json.loads(capsys.readouterr().out)["quality"]
    issues = pd.read_parquet(store.quality_path())
    assert quality == {"space": "efficientnet_lite0/pretrained/penultimate",
                       **{k: int((issues["kind"] == k).sum())
                          for k in (SPLIT_LEAK, NEAR_DUPLICATE, LABEL_ISSUE, OUTLIER)}}
    outliers = issues[issues["kind"] == OUTLIER]
    assert len(outliers) == int(np.ceil(0.05 * len(store.read_images([PATH_COLUMN]))))
    assert outliers["score"].between(0, 2).all()


def test_an_interrupted_quality_run_keeps_its_neighbour_search(injected):
    store, _, _ = injected
    neighbours = store.quality_part_path("neighbours.npz")
    store.invalidate(store.quality_path())
    searched = neighbours.stat().st_mtime_ns
    kill_when(["-q", "quality", "--store", str(store.root), "--force"],
              lambda: neighbours.stat().st_mtime_ns != searched, timeout=120)
    redone = neighbours.stat().st_mtime_ns
    assert redone != searched, "the forced run should have searched again before the kill"
    assert main(["-q", "quality", "--store", str(store.root)]) == 0
    assert neighbours.stat().st_mtime_ns == redone  # the finished search was not redone
    assert store.meta(store.quality_path()) is not None


def test_a_rerun_keeps_the_pixel_verdicts_of_its_similar_pairs(injected):
    """The pixel check reads the candidate pairs' images again: its verdicts are a kept part,
    like the neighbour search, so a run interrupted after it does not read them again."""
    store, copies, _ = injected
    verdicts = store.quality_part_path("same-pixels.npz")
    assert store.meta(verdicts)["pairs"] >= len(copies)
    checked = verdicts.stat().st_mtime_ns
    store.invalidate(store.quality_path())  # as a run killed before its table was written
    assert main(["-q", "quality", "--store", str(store.root)]) == 0
    assert verdicts.stat().st_mtime_ns == checked
    assert (pd.read_parquet(store.quality_path())["kind"] == NEAR_DUPLICATE).sum() >= len(copies)


def test_pixels_tell_copies_from_look_alikes_and_ignore_blank_canvases(small_tree):
    paintings = sorted(small_tree.rglob("*.jpg"))[:24]
    signatures = [signature(Image.open(p)) for p in paintings]
    for painting, own in zip(paintings, signatures, strict=True):
        for kind in range(3):  # re-encoded, resized, cropped
            copy = signature(Image.open(io.BytesIO(near_copy(painting, kind))))
            assert same_picture(own, copy), (painting, kind, pixel_difference(own, copy))
    assert not any(same_picture(a, b) for i, a in enumerate(signatures)
                   for b in signatures[i + 1:])
    painting = Image.open(paintings[0]).convert("RGB")
    other_ink = Image.merge("RGB", painting.split()[::-1])  # the same layout, other colours
    assert not same_picture(signature(painting), signature(other_ink))
    rng = np.random.default_rng(0)
    pale, paler = (Image.fromarray((tint + rng.integers(0, 3, (224, 224))).astype(np.uint8))
                   for tint in (232, 236))  # two blank canvases, no layout to compare
    buffer = io.BytesIO()
    pale.save(buffer, format="JPEG", quality=50)
    assert same_picture(signature(pale), signature(Image.open(buffer)))
    assert not same_picture(signature(pale), signature(paler))


def test_pixels_tell_a_catalogue_copy_from_another_product_shot_the_same_way():
    """Product photos on white share layout and background: a shirt in another pale colour on
    the same model is not a copy, one photo listed twice and a re-encoded copy are."""
    pink, green, jeans, jeans_again = (signature(Image.open(CATALOGUE / f"{name}.jpg"))
                                       for name in ("17535", "17556", "13261", "13262"))
    assert not same_picture(pink, green), pixel_difference(pink, green)
    assert same_picture(jeans, jeans_again), pixel_difference(jeans, jeans_again)
    for name in ("17535", "17556"):
        own = signature(Image.open(CATALOGUE / f"{name}.jpg"))
        for kind in range(3):
            copy = signature(Image.open(io.BytesIO(near_copy(CATALOGUE / f"{name}.jpg", kind))))
            assert same_picture(own, copy), (name, kind, pixel_difference(own, copy))


def test_a_pair_whose_image_cannot_be_read_is_decided_by_its_similarity(injected, caplog):
    store, copies, _ = injected
    paths = store.read_images([PATH_COLUMN])[PATH_COLUMN].tolist()
    name, original = next(iter(copies.items()))
    other = next(p for p in paths if p not in copies and p not in copies.values())
    copy_row, original_row, other_row = (paths.index(p) for p in (name, original, other))
    pairs = (np.array([copy_row, copy_row]), np.array([original_row, other_row]),
             np.array([0.97, 0.96]))
    assert same_pixels(store, pairs)[1].tolist() == [original_row]  # the other is no copy

    copy = Path(store.images_meta()["root"]) / name
    readable = copy.read_bytes()
    copy.write_bytes(readable[:200])  # changed since ingestion: no longer decodes
    try:
        with caplog.at_level(logging.WARNING, logger="precompute.stages.quality"):
            first, second, _ = same_pixels(store, pairs)
    finally:
        copy.write_bytes(readable)
    assert first.tolist() == [copy_row] * 2 and second.tolist() == [original_row, other_row]
    assert "1 of 3 images of similar pairs could not be read" in caplog.text


def test_confident_learning_flags_a_label_its_probabilities_contradict():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.9, 0.1]])
    labels = np.array(["a", "a", "b", "b", "b"])  # the last one looks like an "a"
    found = label_issues(np.array(list("vwxyz")), labels, probabilities, ["a", "b"], "letter")
    assert found[["sample_id", "given", "suggested"]].values.tolist() == [["z", "b", "a"]]
    assert found["score"].iloc[0] == pytest.approx(0.9)


def test_a_duplicate_group_inside_training_is_no_leak():
    duplicates = issue_table([
        {"sample_id": "a", "kind": NEAR_DUPLICATE, "score": 0.99, "related_sample_id": "b",
         "group": 0},
        {"sample_id": "b", "kind": NEAR_DUPLICATE, "score": 0.99, "related_sample_id": "a",
         "group": 0},
        {"sample_id": "c", "kind": NEAR_DUPLICATE, "score": 0.98, "related_sample_id": "d",
         "group": 1},
        {"sample_id": "d", "kind": NEAR_DUPLICATE, "score": 0.98, "related_sample_id": "c",
         "group": 1},
    ])
    leaks = split_leaks(duplicates, np.array(list("abcd")),
                        np.array(["train", "train", "train", "test"]), "style")
    assert leaks[["sample_id", "related_sample_id", "given"]].values.tolist() == [
        ["d", "c", "test"]]


def test_together_keeps_every_copy_with_its_original_and_no_test_image_leaks(injected,
                                                                             tmp_path):
    store, copies, _ = injected
    copied = Store(shutil.copytree(store.root, tmp_path / "store"))
    groups = near_duplicate_groups(copied)
    row_of = {id_: row for row, id_ in enumerate(copied.read_images([ID_COLUMN])[ID_COLUMN])}
    anywhere = ensure_split(copied, TrainConfig(target="style", near_duplicates="anywhere"))
    assert np.array_equal(anywhere.groups, groups)  # the quality stage's groups ride along
    leaked = seen_in_training(anywhere)
    issues = pd.read_parquet(copied.quality_path())
    leaks = issues[(issues["kind"] == SPLIT_LEAK) & (issues["given"] == "test")]
    assert leaked.sum() == len(leaks)
    apart = [copy for copy, original in copies.items()
             if anywhere.parts[row_of[sample_id(copy)]]
             != anywhere.parts[row_of[sample_id(original)]]]
    assert apart, "split one by one, no copy left its original's side: nothing to keep together"
    for folds in (1, 3):
        split = ensure_split(copied, TrainConfig(target="style", folds=folds))
        where = split.parts if folds == 1 else split.folds
        for copy, original in copies.items():
            assert where[row_of[sample_id(copy)]] == where[row_of[sample_id(original)]], copy
        assert not seen_in_training(split).any()
