"""Start a real `panel serve app` process and the system's headless Chromium (Playwright).

Used by the browser tests and by the scripts that take the README's screenshots and measure
the app in bench/.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(os.environ.get("FSE_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppUrl(str):
    """The served app's URL; `pid` is the server's process id (for memory measurements) and
    `log` the file holding its output."""

    pid: int
    log: Path

    def wait_until_warm(self, timeout: float = 300) -> None:
        """Until the server's warm-up (explorer/warmup.py) has logged that it is done, so a
        measurement does not share the CPU with numba compiling kernels."""
        deadline = time.monotonic() + timeout
        while "explorer ready for" not in self.log.read_text():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no 'explorer ready' line in {self.log} after {timeout} s")
            time.sleep(0.5)


@contextlib.contextmanager
def panel_server(store: Path, *extra: str, repo: Path = REPO, python: str | None = None,
                 cwd: Path | None = None, env: dict[str, str] | None = None
                 ) -> Iterator[AppUrl]:
    """Run `panel serve app --args --store STORE` on a free port, with the code of the checkout
    `repo` (this one unless given) on the path; yield the app's URL. With `python` (another
    environment's interpreter) the app runs on that environment's installed package instead,
    from the folder `cwd`; `env` adds variables to the server's environment."""
    port = free_port()
    log = (ARTIFACTS / f"panel-serve-{port}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        python or sys.executable, "-m", "panel", "serve", str(repo / "app"),
        "--address", "127.0.0.1", "--port", str(port), *extra, "--args", "--store", str(store),
    ]
    path = [] if python else [str(repo), os.environ.get("PYTHONPATH")]
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=cwd or repo, stdout=output,
                                   stderr=subprocess.STDOUT, env={
                                       **os.environ, **(env or {}),
                                       "PYTHONPATH": os.pathsep.join(filter(None, path))})
    url = AppUrl(f"http://127.0.0.1:{port}/app")
    url.pid, url.log = process.pid, log
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"panel serve did not start; see {log}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def chromium() -> Iterator:
    """The system Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(
            f"Chromium not found at {CHROMIUM}: install it (make test does) or set FSE_CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
