"""The server: Panel's `/components/` route imports nothing on request, and a session's page
loads nothing from outside the explorer's own server."""

from __future__ import annotations

import asyncio
import http.client
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest

from explorer.server_safety import drop_messages_of_closed_connections, release_freed_memory
from tests.browser.explorer_page import ExplorerPage
from tests.browser.server import panel_server
from tests.helpers import sample_paintings

pytestmark = pytest.mark.browser

ZEN = "Beautiful is better than ugly"  # what `import this` prints


def get(url: str, path: str) -> int:
    address = urlparse(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_the_component_route_imports_no_module_a_request_names(built_store):
    """Panel's handler imports `<module>` of `/components/<module>/...` before checking it;
    the explorer's server answers 404 before that (explorer/server_safety.py). A server of its
    own, so its log is complete (stdout flushed at exit) when read."""
    paths = ["/components/this/X/_css/a", "/components/json/X/a.js",
             "/components/json/JSONDecoder/_css/a.css", "/components/this/s/__css__/a.css"]
    with panel_server(built_store) as url:
        statuses = {path: get(url, path) for path in paths}
    log = url.log.read_text()
    assert all(f"GET {path}" in log for path in paths), "the requests should reach the server"
    assert ZEN not in log, f"the server imported `this` ({url.log})"
    assert all(status in {403, 404} for status in statuses.values()), statuses


def test_a_server_started_without_glibc_allocator_says_once_how_to_start_it(built_store):
    """Started as `make demo` starts it, the server says nothing of its allocator; started
    plainly, it names the setting that hands a burst of sessions' memory back, once
    (app/app_hooks.py)."""
    setting = {"PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2"}
    hint = " ".join(f"{name}={value}" for name, value in setting.items())
    with panel_server(built_store, env=setting) as url:
        pass
    assert hint not in url.log.read_text()
    with panel_server(built_store) as url:
        pass
    assert url.log.read_text().count(hint) == 1, url.log


def same_origin(url: str, server: str) -> bool:
    """Whether the browser fetched `url` from the server at `server` (a blob: URL is the page's
    own memory, named with the page's origin; a data: URL is no fetch)."""
    if url.startswith("data:"):
        return True
    parsed = urlparse(url.removeprefix("blob:"))
    return parsed.scheme in {"http", "ws"} and parsed.netloc == urlparse(server).netloc


def test_a_session_requests_nothing_outside_the_server(served_store, built_store, page):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("websocket", lambda socket: requested.append(socket.url))
    explorer = ExplorerPage(page, served_store, built_store).open()
    explorer.hover(3)
    page.locator(".fse-hover .fse-card[data-row='3']").wait_for()
    explorer.click(12)
    page.locator(".fse-focus .fse-card[data-row='12']").wait_for()
    frame = explorer.frame()
    explorer.drag_box((frame["left"] + 2, frame["top"] + 2),
                      (frame["left"] + frame["width"] - 2, frame["top"] + frame["height"] - 2))
    assert explorer.selected_count() > 0
    page.get_by_text("Layers", exact=True).click()
    page.locator(".fse-separability canvas").first.wait_for(state="visible")
    page.get_by_text("Metrics", exact=True).click()
    page.locator(".fse-confusion canvas").first.wait_for(state="visible")
    page.get_by_text("Query an image", exact=True).click()
    page.locator(".fse-upload input[type=file]").set_input_files(str(sample_paintings(1)[0]))
    page.locator(".fse-query-card").wait_for(timeout=120_000)
    page.get_by_text("Selection", exact=True).click()
    page.locator(".fse-counts td").first.wait_for()
    page.wait_for_load_state("networkidle")
    assert any(url.startswith(served_store) for url in requested), requested
    foreign = [url for url in requested if not same_origin(url, served_store)]
    assert foreign == [], f"requests outside {served_store}: {foreign}"


def test_a_message_after_the_session_was_let_go_is_dropped_not_raised():
    """Bokeh detaches a closed connection's session; a PATCH-DOC or PULL-DOC sent just before
    the close, or a second close, then hit `assert self._session is not None` (ten tracebacks
    in a loaded twenty-session run). Real Bokeh objects, with the session let go as
    `client_lost` does."""
    from bokeh.document import Document
    from bokeh.protocol import Protocol
    from bokeh.server.connection import ServerConnection
    from bokeh.server.protocol_handler import ProtocolHandler
    from bokeh.server.session import ServerSession
    from bokeh.server.views.ws import WSHandler

    drop_messages_of_closed_connections()
    handler = object.__new__(WSHandler)  # no socket: only the message path is exercised
    handler.handler = ProtocolHandler()
    handler.connection = ServerConnection(Protocol(), handler, None,
                                          ServerSession("s", Document(), io_loop=None))
    handler.connection.detach_session()
    message = Protocol().create("PULL-DOC-REQ")
    with ThreadPoolExecutor(1) as thread:  # a loop of its own: Playwright's runs in this one
        assert thread.submit(asyncio.run, handler._handle(message)).result() is None
    handler.on_close()  # the socket closing a second time


def test_the_allocator_figures_count_buffers_as_in_use_only_while_they_live():
    """What the server logs after sessions close: 64 MiB of 32 KiB buffers (glibc's, not
    Python's small-object arenas) count as in use while they live and not once they are
    gone."""
    before = release_freed_memory()
    if before is None:
        pytest.skip("only glibc 2.33 and later report their heaps")
    buffers = [bytearray(32 * 1024) for _ in range(2048)]
    held = release_freed_memory()
    del buffers
    after = release_freed_memory()
    assert held.in_use_mib - before.in_use_mib >= 60
    assert after.in_use_mib - before.in_use_mib < 8

