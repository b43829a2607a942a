"""An action run at once when called, then at most once per interval while calls keep coming,
so a served page answers a pointer at rest without delay and a moving one at a bounded rate."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import panel as pn
from bokeh.document import Document
from panel.io.state import set_curdoc


class Throttle:
    """Calling it runs `action` at once if it has not run in the last `interval_ms`, otherwise
    once when the interval is over (and then with what is current). Served, call it under the
    document's lock, as Bokeh's event handlers are."""

    def __init__(self, action: Callable[[], None], interval_ms: int):
        self._action, self._interval_s = action, interval_ms / 1000
        self._last = float("-inf")  # when the action last ran (time.monotonic)
        self._due = False  # a run is scheduled for the end of the interval

    def __call__(self) -> None:
        if self._due:
            return
        wait_s = self._last + self._interval_s - time.monotonic()
        document = pn.state.curdoc
        if wait_s <= 0 or document is None or document.session_context is None:
            self._run(document)
        else:
            self._due = True
            document.add_timeout_callback(partial(self._run, document), int(wait_s * 1000) + 1)

    def _run(self, document: Document | None) -> None:
        """As the current document, so that Panel sends each change at once instead of on a
        later turn of the server's loop."""
        self._due = False
        self._last = time.monotonic()
        with set_curdoc(document):
            self._action()
