"""What `panel serve` does by default that the explorer's server must not: import any module a
request names, log a browser that left as a server error, and keep the memory of sessions that
are gone.

Bokeh lets go of a closed connection's session (`client_lost` detaches it), but a message the
browser sent just before closing, or a second close of the same socket, still reaches the
handler, which asserts the session is there: on a loaded machine twenty closing sessions logged
ten such AssertionError tracebacks. `drop_messages_of_closed_connections` drops them.

Panel's `/components/<module>/<Model>/<attribute>/<file>` route is closed to modules the page
does not use.

Panel serves files that a component lists in its resource attributes through that route, and
its handler (`panel.io.server.ComponentResourceHandler`) imports `<module>` before checking
anything: an unauthenticated GET of `/components/this/X/_css/a` runs `import this` (the Zen of
Python lands in the server's log), `/components/torch/...` imports torch, and so on for any
installed module. Panel has no setting for the route, so `restrict_component_route` wraps the
handler's `parse_url_path`: a path whose module is not in `allowed` gets 404 before anything is
imported. The explorer's page requests nothing under `/components/` (Panel's own files come
from `/static/extensions/panel/`), so by default no module is allowed.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError
from tornado.websocket import WebSocketClosedError

log = logging.getLogger(__name__)

SERVED_MODULES: tuple[str, ...] = ()  # module names, each allowing its submodules too
RELEASE_DELAY_S = 5.0  # the collector runs this long after a session closes ...
RELEASE_SETTLE_S = 2.0  # ... and the memory goes back this long after that


def restrict_component_route(allowed: Iterable[str] = SERVED_MODULES) -> None:
    """Let Panel's component-resource handler import and serve from `allowed` modules only
    (and their submodules); every other request gets 404. Applies to this process; calling it
    again replaces the earlier allow-list."""
    from panel.io.server import ComponentResourceHandler

    allowed = tuple(allowed)
    parse = getattr(ComponentResourceHandler.parse_url_path, "unrestricted",
                    ComponentResourceHandler.parse_url_path)

    def parse_url_path(self, path: str) -> str:
        module = path.split("/", 1)[0]
        if not any(module == name or module.startswith(name + ".") for name in allowed):
            raise HTTPError(404)
        return parse(self, path)

    parse_url_path.unrestricted = parse
    ComponentResourceHandler.parse_url_path = parse_url_path


def quiet_closed_connections(loop: asyncio.AbstractEventLoop) -> None:
    """A message still being written to a browser that closed its page fails with
    WebSocketClosedError in a task nobody awaits, which asyncio logs as a traceback ("Task
    exception was never retrieved"; dozens when many sessions close on a busy server). Those
    become one debug line; every other unhandled exception still goes to the default handler."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if isinstance(context.get("exception"), WebSocketClosedError | StreamClosedError):
            log.debug("a message to a closed browser session was dropped")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


def drop_messages_of_closed_connections() -> None:
    """Make Bokeh's websocket handler drop messages and repeated closes of a connection whose
    session it has already let go, with a debug line, instead of raising AssertionError."""
    from bokeh.server.views.ws import WSHandler

    if getattr(WSHandler, "_fse_drops_closed", False):
        return
    handle, close = WSHandler._handle, WSHandler.on_close

    async def handle_if_open(self, message):
        if _let_go(self):
            log.debug("a message of a closed browser session was dropped")
            return None
        return await handle(self, message)

    def close_once(self) -> None:
        if _let_go(self):
            log.debug("a closed browser session closed again")
            return
        close(self)

    WSHandler._handle, WSHandler.on_close = handle_if_open, close_once
    WSHandler._fse_drops_closed = True


def _let_go(handler) -> bool:
    connection = getattr(handler, "connection", None)
    return connection is not None and connection._session is None


class _MallocInfo(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc 2.33 and later)."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


@dataclass(frozen=True)
class HeapFigures:
    """What glibc's allocator holds: bytes handed out and still in use, and bytes freed but
    kept in its heaps (given back to the system only where a whole page is free)."""

    in_use_mib: float
    free_mib: float


def release_freed_memory(collect: bool = True) -> HeapFigures | None:
    """Collect garbage (unless `collect` is False: done already) and hand glibc's free pages
    back to the system (`malloc_trim`); the allocator's figures afterwards, where glibc
    reports them.

    Python's own small-object arenas it cannot reach: an arena goes back only when every object
    in it is gone, and a few that outlive a burst of sessions keep many of them (pymalloc's
    statistics after twenty sessions: 78 more arenas, 80 MB in empty pools), hence
    PYTHONMALLOC=malloc for a shared server. With it, the bytes in use after twenty sessions
    close are those of before; what the process keeps beyond them is free space in pages that
    also hold live objects (docs/benchmarks.md, *Twenty users at once*)."""
    if collect:
        gc.collect()
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    trim = getattr(libc, "malloc_trim", None)  # glibc's only
    if trim is None:
        return None
    trim(0)
    mallinfo2 = getattr(libc, "mallinfo2", None)  # glibc 2.33 and later
    if mallinfo2 is None:
        return None
    mallinfo2.restype = _MallocInfo
    info = mallinfo2()
    return HeapFigures(in_use_mib=(info.uordblks + info.hblkhd) / 2**20,
                       free_mib=info.fordblks / 2**20)


class ReleaseAfterClosing:
    """Hands freed memory back (`release_freed_memory`) once for a run of closing sessions:
    the collector runs `delay_s` after the first of them closes, and the release `settle_s`
    later covers every session closed before the collector ran (a later one starts the next
    run).

    Released inside each session's `on_session_destroyed` hook, much of a burst's memory stayed
    with the allocator: Bokeh calls the hook while the session's document is still held, and
    the document's objects, freed by the collector afterwards, let go of more on the event
    loop's next turns; a page is handed back only once none of its objects lives. So the
    collector runs first and the release `settle_s` later, once those have gone (twenty
    sessions on the sample store: docs/benchmarks.md, *Twenty users at once*)."""

    def __init__(self, delay_s: float = RELEASE_DELAY_S, settle_s: float = RELEASE_SETTLE_S
                 ) -> None:
        self.delay_s, self.settle_s = delay_s, settle_s
        self._closed = 0  # sessions closed and not yet collected
        self._scheduled = False

    def session_closed(self) -> None:
        """Count a closed session; schedule the release on the running loop unless one is."""
        self._closed += 1
        if not self._scheduled:
            self._scheduled = True
            IOLoop.current().call_later(self.delay_s, self._collect)

    def _collect(self) -> None:
        closed, self._closed, self._scheduled = self._closed, 0, False
        gc.collect()
        IOLoop.current().call_later(self.settle_s, self._release, closed)

    def _release(self, closed: int) -> None:
        heap = release_freed_memory(collect=False)
        held = (f": {heap.in_use_mib:.1f} MiB in use, {heap.free_mib:.1f} MiB free in the "
                "allocator's heaps" if heap else "")
        log.info("%d session(s) closed since the last release; memory released%s", closed, held)
