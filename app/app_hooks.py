"""Server lifecycle hooks of `panel serve app`: get the store ready before the first visitor."""

import logging
import sys
import threading

from explorer.location import dask_scheduler, store_root
from explorer.server_safety import restrict_component_route
from explorer.warmup import warm_up

ARGS = sys.argv[1:]  # bokeh sets sys.argv to the app's `--args` only while this module loads


def on_server_loaded(server_context) -> None:
    """Close Panel's `/components/` route to modules the page does not use
    (explorer/server_safety.py), then load the store and compile the map's kernels in the
    background; the explorer's INFO lines ("explorer ready for ... in N s") join the server's
    log."""
    restrict_component_route()
    logging.getLogger("explorer").setLevel(logging.INFO)
    root = store_root(ARGS)
    threading.Thread(target=warm_up, args=(root, dask_scheduler(ARGS)), name="fse-warm-up",
                     daemon=True).start()
