"""An action run once the calls asking for it have paused, so a served page answers the last
of a burst of pointer moves or keystrokes, not each one."""

from __future__ import annotations

from collections.abc import Callable

import panel as pn


class AfterPause:
    """Calling it runs `action` once `pause_ms` have passed without another call; outside a
    server (a notebook, a test) it runs at once."""

    def __init__(self, action: Callable[[], None], pause_ms: int):
        self._action, self._pause_ms = action, pause_ms
        self._due: object | None = None  # the pending run's timeout callback

    def __call__(self) -> None:
        document = pn.state.curdoc
        if document is None or document.session_context is None:
            self._run()
            return
        if self._due is not None:
            document.remove_timeout_callback(self._due)
        self._due = document.add_timeout_callback(self._run, self._pause_ms)

    def _run(self) -> None:
        self._due = None
        self._action()
