"""Take the README's screenshots of the explorer on a store (default: the sample store).

    python docs/screenshots.py [--store sample_data/store]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser.server import ARTIFACTS, chromium, panel_server  # noqa: E402

DOCS = REPO / "docs"
README_SIZE = {"width": 1400, "height": 860}  # the README's screenshots
LOOKED_AT = ((1500, 950), (1280, 720), (900, 900))  # the sizes looked at, not shipped


def at_each_size(page, name: str, full_page: bool = False) -> None:
    """Screenshots `<name>-<width>x<height>.png` of the page as it is, at each size looked at,
    into the test artifacts; then back to the README's size."""
    for width, height in LOOKED_AT:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(2_000)
        page.screenshot(path=ARTIFACTS / f"{name}-{width}x{height}.png", full_page=full_page)
    page.set_viewport_size(README_SIZE)


def compare_view(page, url: str, store: Path) -> None:
    """The compare view with one painting's neighbours ringed in both maps, at the README's
    size and the three sizes looked at."""
    from explorer.compare_view import contrast_space
    from precompute.store import SpaceKey
    from tests.browser.explorer_page import ExplorerPage

    explorer = ExplorerPage(page, url, store)
    second = contrast_space(explorer.data.spaces, SpaceKey.parse(explorer.space))
    explorer.open(f"?compare={second}")
    page.locator(".fse-map-b canvas").first.wait_for(state="visible")
    page.wait_for_timeout(3_000)
    explorer.click(17)
    page.wait_for_timeout(4_000)
    page.screenshot(path=DOCS / "screenshot-compare.png")
    at_each_size(page, "compare")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default=str(REPO / "sample_data" / "store"))
    args = parser.parse_args()
    with panel_server(Path(args.store)) as url, chromium() as browser:
        page = browser.new_page(viewport=README_SIZE)
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="networkidle")
        page.locator(".fse-legend-value").first.wait_for()
        page.wait_for_timeout(4_000)  # the map that keeps the most neighbours
        page.screenshot(path=DOCS / "screenshot.png")
        page.locator(".fse-color-by select").select_option("artist")
        page.wait_for_timeout(4_000)
        page.screenshot(path=DOCS / "screenshot-artist.png")
        legend, search = page.locator(".fse-legend-row"), page.locator(".fse-legend-search")
        search.fill("rembrandt")
        legend.filter(has_text="rembrandt").first.click()
        search.fill("monet")
        legend.filter(has_text="claude-monet").first.click(modifiers=["Shift"])
        page.wait_for_timeout(4_000)
        page.screenshot(path=DOCS / "screenshot-isolated.png")
        at_each_size(page, "isolated")
        legend.filter(has_text="claude-monet").first.click()  # back to one, then to all
        legend.filter(has_text="claude-monet").first.click()
        page.locator(".fse-color-by select").select_option("style")
        page.goto(url + "?view=[-0.6,-0.1,0.2,0.7]", wait_until="networkidle")
        page.locator(".fse-legend-value").first.wait_for()
        page.wait_for_timeout(5_000)  # zoomed in on one corner: the paintings themselves
        page.screenshot(path=DOCS / "screenshot-images.png")
        compare_view(page, url, Path(args.store))
        page.goto(url, wait_until="networkidle")
        page.locator(".fse-legend-value").first.wait_for()
        page.get_by_text("Layers", exact=True).click()
        strip = page.locator(".fse-strip")
        strip.locator(".fse-strip-tile").first.wait_for()
        strip.scroll_into_view_if_needed()
        page.wait_for_timeout(2_000)
        strip.screenshot(path=DOCS / "screenshot-strip.png")
        for tab in ("Layers", "Metrics", "Quality"):
            page.get_by_text(tab, exact=True).click()
            if tab == "Quality":  # the sample set has no near-duplicates: its likely mistakes
                page.locator(".fse-quality-kinds").get_by_text("Label mistakes?").click()
            page.locator(".fse-tabs").evaluate("tabs => tabs.scrollIntoView({block: 'start'})")
            page.mouse.wheel(0, -110)  # the tab bar below the page's header
            page.wait_for_timeout(3_000)
            page.screenshot(path=DOCS / f"screenshot-{tab.lower()}.png")
            at_each_size(page, tab.lower(), full_page=True)
    print(f"wrote the screenshots into {DOCS} and {ARTIFACTS}")


if __name__ == "__main__":
    main()
