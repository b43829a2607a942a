"""Server lifecycle hooks of `panel serve app`: get the store ready before the first visitor."""

import logging
import os
import sys
import threading

from tornado.ioloop import IOLoop

from explorer.location import dask_scheduler, store_root
from explorer.server_safety import (
    ReleaseAfterClosing,
    drop_messages_of_closed_connections,
    quiet_closed_connections,
    restrict_component_route,
)
from explorer.warmup import warm_up

ARGS = sys.argv[1:]  # bokeh sets sys.argv to the app's `--args` only while this module loads
RELEASE = ReleaseAfterClosing()


def on_server_loaded(server_context) -> None:
    """Close Panel's `/components/` route to modules the page does not use and keep closed
    browser sessions out of the error log (explorer/server_safety.py), then load the store
    and compile the map's kernels in the background; the explorer's INFO lines ("explorer
    ready for ... in N s") join the server's log."""
    restrict_component_route()
    quiet_closed_connections(IOLoop.current().asyncio_loop)
    drop_messages_of_closed_connections()
    log = logging.getLogger("explorer")
    log.setLevel(logging.INFO)
    if os.environ.get("PYTHONMALLOC") != "malloc":
        log.info("Python's allocator keeps the memory of a burst of sessions after they close; "
                 "start the server with PYTHONMALLOC=malloc MALLOC_ARENA_MAX=2 (as `make demo` "
                 "does) to hand it back (docs/benchmarks.md, Twenty users at once)")
    root = store_root(ARGS)
    threading.Thread(target=warm_up, args=(root, dask_scheduler(ARGS)), name="fse-warm-up",
                     daemon=True).start()


def on_session_destroyed(session_context) -> None:
    """A closed session's memory goes back to the system, not only to the allocator's free
    lists (all of it when the server runs with PYTHONMALLOC=malloc; see on_server_loaded), a
    few seconds later with that of the sessions closing meanwhile; the release's log line
    (explorer/server_safety.py) says what the allocator holds afterwards."""
    logging.getLogger("explorer").info("session %s closed", session_context.id)
    RELEASE.session_closed()
