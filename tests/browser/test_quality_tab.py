"""The Quality tab on a store with injected near-copies: a duplicate group is shown side by
side, its button selects exactly those images on the map, and quality is a colour."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect

from precompute.cli import main
from precompute.store import ID_COLUMN, NEAR_DUPLICATE, Store
from tests.browser.explorer_page import ExplorerPage
from tests.browser.server import ARTIFACTS, panel_server
from tests.helpers import sample_paintings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def store_with_copies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """22 paintings, two of them twice (re-encoded copies), mapped with PCA."""
    from tests.test_quality import near_copy

    folder = tmp_path_factory.mktemp("copies")
    rows = []
    for i, painting in enumerate(sample_paintings(2)):
        shutil.copy(painting, folder / f"{i}.jpg")
        rows.append({"path": f"{i}.jpg", "style": painting.parent.name})
    for i in (3, 10):
        (folder / f"copy-of-{i}.jpg").write_bytes(near_copy(folder / f"{i}.jpg", 0))
        rows.append({"path": f"copy-of-{i}.jpg", "style": rows[i]["style"]})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    (folder / "config.toml").write_text(
        '[dataset]\nmanifest = "manifest.csv"\n[model]\nbackbone = "efficientnet_lite0"\n'
        '[embed]\nlayers = ["penultimate"]\nworkers = 0\n[projection]\nmethods = ["pca"]\n'
        '[analysis]\nmin_class_size = 2\nshuffles = 2\nprobe_shuffles = 1\nbootstrap = 20\n'
        '[quality]\nfolds = 2\n')
    store = folder / "store"
    assert main(["-q", "all", "--config", str(folder / "config.toml"), "--store",
                 str(store)]) == 0
    return store


def test_the_quality_tab_shows_a_duplicate_group_and_selects_it_on_the_map(store_with_copies,
                                                                           page):
    issues = pd.read_parquet(Store.open(store_with_copies).quality_path())
    duplicates = issues[issues["kind"] == NEAR_DUPLICATE]
    ids = Store.open(store_with_copies).read_images([ID_COLUMN])[ID_COLUMN].tolist()
    first_group = duplicates[duplicates["group"] == duplicates.sort_values(
        "score", ascending=False)["group"].iloc[0]]
    expected = sorted(ids.index(s) for s in first_group["sample_id"])
    assert len(duplicates) == 4 and len(expected) == 2
    with panel_server(store_with_copies) as url:
        explorer = ExplorerPage(page, url, store_with_copies).open()
        page.get_by_text("Quality", exact=True).click()
        group = page.locator(f".fse-quality-item[data-kind='{NEAR_DUPLICATE}']").first
        group.wait_for()
        tiles = group.locator(".fse-tile")
        assert sorted(int(tiles.nth(i).get_attribute("data-row"))
                      for i in range(tiles.count())) == expected
        page.locator(".fse-quality-select button").first.click()
        page.wait_for_timeout(1_500)  # the page scrolls up to the map, which shows them
        assert page.locator(".fse-map").bounding_box()["y"] >= 0, "the map should be in view"
        page.get_by_text("Selection", exact=True).click()
        assert explorer.selected_count() == 2
        # the count can show before the grid has drawn its every tile
        expect(page.locator(".fse-grid .fse-tile")).to_have_count(len(expected))
        assert sorted(explorer.rows_of(".fse-grid .fse-tile")) == expected
        page.get_by_text("Quality", exact=True).click()
        page.screenshot(path=ARTIFACTS / "quality-tab.png", full_page=True)
        explorer.choose("fse-color-by", "quality")
        page.locator(".fse-legend-value").get_by_text(NEAR_DUPLICATE, exact=True).wait_for()
        legend = page.locator(".fse-legend-value").all_inner_texts()
        assert NEAR_DUPLICATE in legend and "none" in legend
