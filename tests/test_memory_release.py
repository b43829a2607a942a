"""The server's release of closed sessions' memory, timed on a real event loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from explorer.server_safety import ReleaseAfterClosing


def test_sessions_closing_together_have_their_memory_released_once_after_them(caplog):
    """Bokeh discards the closed sessions of a burst in one pass, calling each one's hook while
    its document is still held: the collector runs a moment after the first close and the
    memory goes back once, for every session closed before the collector ran; a session that
    closes after it is collected and released in a run of its own."""
    releases = ReleaseAfterClosing(delay_s=0.2, settle_s=0.3)

    def released() -> list[str]:
        return [record.getMessage() for record in caplog.records
                if "memory released" in record.getMessage()]

    async def closing() -> None:
        for _ in range(3):  # a burst, within the delay
            releases.session_closed()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the burst collected, its release still to come
        releases.session_closed()
        for _ in range(200):  # both releases, however slow the collector
            if len(released()) == 2:
                break
            await asyncio.sleep(0.05)

    # a loop of its own: in the whole suite Playwright's runs in this thread
    with caplog.at_level(logging.INFO, logger="explorer"), ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, closing()).result()
    assert [line.split()[0] for line in released()] == ["3", "1"], released()
