"""Fixtures for browser tests: a served test store and a fresh Chromium page per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.server import chromium, panel_server


@pytest.fixture(scope="session")
def browser():
    """The system Chromium, launched once for the session."""
    try:
        with chromium() as launched:
            yield launched
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
@pytest.fixture
def page(browser):
    """A fresh browser page with a desktop-sized viewport."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    new_page = context.new_page()
    new_page.set_default_timeout(60_000)
    yield new_page
    context.close()


@pytest.fixture(scope="session")
def served_store(built_store: Path) -> Iterator[str]:
    """The app serving the 66-painting test store."""
    with panel_server(built_store) as url:
        yield url
