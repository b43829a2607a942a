"""A store still being built: what tells one state of it from the next, and what a page says
while `precompute` is still writing to it (precompute/progress.py records the run).

The pipeline writes the maps of the embedded layers first, so a page can open on a first map
while the quality checks, training and analysis run. A session opened later gets what has landed
by then (`store_stamp` is part of the key under which the server keeps a store's data); an open
page checks every few seconds and offers a reload when more has landed. The page shown before
the first map exists reloads itself once it has landed.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import panel as pn

from precompute.progress import RUNNING, STOPPED, BuildProgress, read_progress
from precompute.store import Store

CHECK_EVERY_MS = 3_000  # an open explorer looks at the build's progress this often
FIRST_MAP_CHECK_MS = 1_000  # the page waiting for a first map, this often
BUILD_CSS = """
.fse-build { background: #fff7e0; border: 1px solid #e8c66a; border-radius: 4px;
             padding: 4px 10px; font-size: 13px; }
.fse-build.fse-stopped { background: #fdecea; border-color: #e0a09a; }
"""


def store_stamp(root: str | Path) -> tuple[object, ...]:
    """What distinguishes the store's state: the latest run's record and, while a run is
    writing, every finished artifact (their sidecars), so a page opened after another map or
    score has landed reads the store again."""
    store = Store(root)
    progress = read_progress(store)
    if progress is None:
        return ()
    if progress.state != RUNNING:
        return (progress.updated, progress.state)
    try:
        landed = sorted(str(p.relative_to(store.root)) for p in store.root.glob("*/**/*.json"))
    except FileNotFoundError:  # a folder the build removed during the walk: look again
        return store_stamp(root)
    return (progress.updated, progress.state, len(landed), hash(tuple(landed)))


def build_note(progress: BuildProgress | None, root: Path) -> tuple[str, str] | None:
    """One line on an unfinished build of the store at `root` (HTML, escaped) and its CSS
    class; None when finished."""
    if progress is None or progress.state not in (RUNNING, STOPPED):
        return None
    done, total = len(progress.finished), len(progress.stages)
    left = ", ".join(progress.left)
    if progress.state == RUNNING:
        return (f"<b>Still building</b>: {done} of {total} stages done; to come: "
                f"{html.escape(left)}. What has landed is shown.", "fse-build")
    command = f"precompute all --store {root}" if "ingest" in progress.stages else \
        f"precompute {progress.left[0]} --store {root}"
    return (f"<b>The build stopped</b> after {done} of {total} stages (left: "
            f"{html.escape(left)}). Run <code>{html.escape(command)}</code> to finish it.",
            "fse-build fse-stopped")


class BuildBanner(pn.viewable.Viewer):
    """A line above the map while the store is still being built: the stages done and to
    come, and, once more has landed than this page shows, a button that reloads it (the view
    is in the link, so the reload keeps it). Empty for a finished store."""

    def __init__(self, root: Path, opened_on: tuple, **params):
        super().__init__(**params)
        self._root, self._opened_on = root, opened_on
        self._line = pn.pane.HTML(sizing_mode="stretch_width", margin=(0, 5))
        self._reload = pn.widgets.Button(label="Reload to see what has landed", visible=False,
                                         color="primary", css_classes=["fse-reload"],
                                         margin=(0, 5))
        self._reload.js_on_click(code="window.location.reload()")
        self._row = pn.Row(self._line, self._reload, css_classes=["fse-build-row"],
                           sizing_mode="stretch_width", visible=False)
        self._callback = None
        if self._check():
            self._callback = pn.state.add_periodic_callback(self._check, CHECK_EVERY_MS)

    def _check(self) -> bool:
        """Show the build's state; whether to keep checking (while it runs)."""
        progress = read_progress(Store(self._root))
        note = build_note(progress, self._root)
        landed = store_stamp(self._root) != self._opened_on
        self._row.visible = note is not None or landed
        if note is not None:
            self._line.object = f"<div class='{note[1]}'>{note[0]}</div>"
        elif landed:
            self._line.object = "<div class='fse-build'><b>The build has finished.</b></div>"
        self._reload.visible = landed
        running = progress is not None and progress.state == RUNNING
        if not running and self._callback is not None:
            self._callback.stop()
        return running

    def __panel__(self) -> pn.viewable.Viewable:
        return self._row


def reload_when_ready(ready: Callable[[], bool]) -> pn.widgets.TextInput:
    """A hidden widget that reloads the page once `ready()` says the store has a map; the
    page that says no store is there yet carries it."""
    signal = pn.widgets.TextInput(visible=False)
    signal.jscallback(value="window.location.reload()")

    def check() -> None:
        if ready():
            signal.value = "ready"
            callback.stop()

    callback = pn.state.add_periodic_callback(check, FIRST_MAP_CHECK_MS)
    return signal
