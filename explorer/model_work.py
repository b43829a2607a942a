"""The network's work for a session (loading a store's model, embedding an upload, Grad-CAM)
runs on one worker thread per server process, off the event loop that serves every session,
so one user's upload does not freeze the others' maps. Models are loaded once per process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import panel as pn

from explorer.bounded_cache import BoundedCache
from explorer.cards import placeholder
from explorer.data import ExplorerData
from precompute.extras import needs_pipeline, pipeline_missing
from precompute.store import SpaceKey

T = TypeVar("T")
MODELS_KEPT = 2  # query networks kept per process (a few hundred MB each with torch)

_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fse-model")
_models: BoundedCache[object] = BoundedCache(MODELS_KEPT)


async def off_event_loop(work: Callable[[], T]) -> T:
    """`work()`'s result, computed on the model thread while the event loop serves others."""
    return await asyncio.get_running_loop().run_in_executor(_worker, work)


def query_model(data: ExplorerData, space: SpaceKey):
    """The network of `space`, loaded once per process (imports torch on first use)."""

    def load():
        from precompute.nn.query import load_query_model

        return load_query_model(data.store, space)

    return _models.get((str(data.store.root), space), load)


def pipeline_notice(what: str, css_class: str) -> pn.Column | None:
    """Without the pipeline extra (torch), a line in place of a panel saying that `what` needs
    it and how to install it; None when it is installed."""
    missing = pipeline_missing()
    if not missing:
        return None
    return pn.Column(pn.pane.HTML(placeholder(needs_pipeline(what, missing)),
                                  css_classes=[css_class]), sizing_mode="stretch_width")
