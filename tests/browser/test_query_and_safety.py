"""Query a new image, Grad-CAM, and safety: bad uploads, escaped dataset text, no file paths."""

from __future__ import annotations

import http.client
import io
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
from PIL import Image

from explorer.state import METHOD_LABELS
from precompute.cli import main
from precompute.store import PATH_COLUMN
from tests.browser.explorer_page import ExplorerPage
from tests.browser.server import ARTIFACTS, panel_server
from tests.helpers import sample_paintings

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"
HOSTILE_COLUMN = "note<img src=y onerror=alert(3)>"


@pytest.fixture
def explorer(served_store, built_store, page) -> ExplorerPage:
    return ExplorerPage(page, served_store, built_store).open()


def upload(explorer: ExplorerPage, path: Path) -> None:
    explorer.page.get_by_text("Query an image").click()
    explorer.page.locator(".fse-upload input[type=file]").set_input_files(str(path))


def test_an_uploaded_image_gets_a_label_its_neighbours_and_a_place_on_the_map(explorer,
                                                                              small_tree):
    row = 40
    relative = explorer.data.table[PATH_COLUMN].iloc[row]
    before = explorer.map_pixels()
    upload(explorer, small_tree / relative)
    explorer.page.locator(".fse-query-card").wait_for(timeout=120_000)
    explorer.page.locator(".fse-query-neighbours .fse-tile").first.wait_for()
    labels = explorer.page.locator(".fse-query-card td").all_inner_texts()
    # The session shows the fine-tuned space: its network labels the upload as the train stage
    # labelled the same image.
    predicted = explorer.data.table["predicted style"].iloc[row]
    confidence = explorer.data.table["style confidence"].iloc[row]
    assert labels[0] == Path(relative).name
    assert labels[1] == f"{predicted} ({confidence:.0%})"
    neighbours = explorer.rows_of(".fse-query-neighbours .fse-tile")
    assert neighbours[0] == row, "an image from the store is its own nearest neighbour"
    caption = explorer.page.locator(".fse-query-neighbours .fse-tile span").first.inner_text()
    assert caption.startswith("1.000")
    assert labels[-1] == f"{METHOD_LABELS[explorer.method]} marker ★"
    explorer.page.wait_for_timeout(1_500)  # the neighbours are scrolled into view, smoothly
    tile = explorer.page.locator(".fse-query-neighbours .fse-tile").first.bounding_box()
    height = explorer.page.viewport_size["height"]
    assert 0 <= tile["y"] and tile["y"] + tile["height"] <= height, (
        f"the first neighbour is at y = {tile['y']:.0f} in a {height}-px window")
    after = explorer.map_pixels()
    assert (abs(after - before).sum(axis=2) > 0).sum() > 20, "a marker should appear on the map"
    explorer.page.screenshot(path=ARTIFACTS / "query.png", full_page=True)


@pytest.mark.parametrize(
    "name, payload, reason",
    [
        ("notes.jpg", b"not a picture at all\n" * 50, "not an image"),
        ("half.jpg", sample_paintings(1)[0].read_bytes()[:3000], "truncated file"),
        ("bomb.png", None, "too many pixels"),
    ],
)
def test_a_bad_upload_gets_a_message_not_an_error(explorer, tmp_path, name, payload, reason):
    path = tmp_path / name
    if payload is None:  # 12,000 × 12,000 pixels in a few kilobytes
        buffer = io.BytesIO()
        Image.new("1", (12_000, 12_000)).save(buffer, format="PNG")
        payload = buffer.getvalue()
    path.write_bytes(payload)
    upload(explorer, path)
    message = explorer.page.locator(".fse-query-message")
    message.wait_for(timeout=60_000)
    assert message.inner_text().startswith(f"{name}: {reason}")
    explorer.page.locator(".fse-map canvas").first.wait_for(state="visible")  # still alive


def test_why_this_label_shows_a_grad_cam_heatmap(explorer):
    explorer.click(12)
    explorer.page.locator(".fse-focus .fse-card[data-row='12']").wait_for()
    explorer.page.locator(".fse-why button").click()
    card = explorer.page.locator(".fse-why-card[data-row='12']")
    card.wait_for(timeout=120_000)
    explorer.page.wait_for_timeout(1_500)  # the scroll is smooth
    image = card.locator("img").bounding_box()
    side = explorer.page.locator(".fse-side").bounding_box()
    bottom = min(side["y"] + side["height"], explorer.page.viewport_size["height"])
    assert image["y"] >= side["y"] and image["y"] + 150 <= bottom, "the heatmap is out of view"
    assert card.locator("img").get_attribute("src").startswith("data:image/png;base64,")
    assert "efficientnet_lite0 says" in card.inner_text()


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> Path:
    """A store whose labels and titles are HTML and script."""
    folder = tmp_path_factory.mktemp("hostile")
    rows = []
    for i, painting in enumerate(sample_paintings(1)[:10]):
        (folder / f"{i}.jpg").write_bytes(painting.read_bytes())
        rows.append({"path": f"{i}.jpg", "label": XSS if i % 2 else SCRIPT,
                     "title": f"{SCRIPT} number {i}", HOSTILE_COLUMN: "abc"[i % 3]})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    (folder / "config.toml").write_text(
        '[dataset]\nmanifest = "manifest.csv"\ntext = ["title"]\n'
        '[model]\nbackbone = "efficientnet_lite0"\n'
        '[embed]\nworkers = 0\n[projection]\nmethods = ["pca"]\n'
    )
    store = folder / "store"
    assert main(["-q", "all", "--config", str(folder / "config.toml"), "--store",
                 str(store)]) == 0
    return store


def test_dataset_text_shows_as_text_and_runs_nothing(hostile_store, page):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    with panel_server(hostile_store) as url:
        explorer = ExplorerPage(page, url, hostile_store).open()
        values = page.locator(".fse-legend-value").all_inner_texts()
        assert XSS in values and SCRIPT in values
        explorer.hover(3)
        card = page.locator(".fse-hover .fse-card[data-row='3']")
        card.wait_for()
        assert XSS in card.locator("td").all_inner_texts()
        frame = explorer.frame()  # select everything, for the counts table
        explorer.drag_box((frame["left"] + 2, frame["top"] + 2),
                          (frame["left"] + frame["width"] - 2, frame["top"] + frame["height"] - 2))
        page.locator(".fse-counts td").first.wait_for()
        assert SCRIPT in page.locator(".fse-counts td").all_inner_texts()
        page.locator(".fse-search input").fill("<script>")
        page.keyboard.press("Enter")
        page.locator(".fse-match b").get_by_text("10", exact=True).wait_for()
        page.wait_for_timeout(1_000)
        assert dialogs == []
        page.locator(".fse-color-by select").select_option(HOSTILE_COLUMN)
        page.locator(".fse-legend-title").get_by_text(HOSTILE_COLUMN).wait_for()
        page.locator(".fse-filter-label input").click()  # open the choices list of labels
        page.locator(".fse-filter-label .choices__item--choice", has_text=XSS).wait_for()
        page.wait_for_timeout(1_000)
        page.screenshot(path=ARTIFACTS / "hostile-text.png", full_page=True)
        assert dialogs == []
        assert page.locator("img[src='x'], img[src='y']").count() == 0
        assert page.locator(".fse-legend script, .fse-hover script").count() == 0


def test_paths_from_the_browser_never_reach_the_filesystem(served_store):
    """The explorer serves no files: images travel inside the page, read by row. Traversal
    attempts get 404 from the app's routes and 403 from Bokeh's own static-file route."""
    address = urlparse(served_store)
    attempts = [
        "/app/../../../../etc/passwd", "//etc/passwd", "/etc/passwd",
        "/app/thumbs/0", "/app/thumbs/..%2f..%2fetc%2fpasswd", "/app/images/0",
        "/thumbs/../../etc/passwd", "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/app/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/extensions/panel/..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    ]
    for path in attempts:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert b"root:" not in body, path
        expected = {403, 404} if "static" in path else {404}
        assert response.status in expected, (path, response.status)
