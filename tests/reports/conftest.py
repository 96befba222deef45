"""Fixtures of the report tests: the scenario, a live server on loopback, and headless Chromium.

Chromium comes from Debian (``chromium``, ``chromium-driver``); the session installs it with apt-get when it is
missing and fails loudly if that cannot be done — a browser test never skips.
"""

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.app import create_app
from indicator_exchange.settings import Settings
from tests.reports import scenario as scenario_module
from tests.reports.scenario import Scenario

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]  # fmt: skip


@pytest.fixture
def scenario(client: TestClient, session: Session, settings: Settings) -> Scenario:
    return scenario_module.build(client, session, settings)


def _install_chromium() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} is missing and this run cannot install it: run "
                    "`apt-get install -y chromium chromium-driver` as root", pytrace=False)  # fmt: skip
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr[-2000:]}", pytrace=False)
    if not CHROMIUM.exists():
        pytest.fail(f"apt-get installed chromium but {CHROMIUM} is still missing", pytrace=False)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium (Debian's) driven by Playwright, shared by the session's browser tests."""
    if not CHROMIUM.exists():
        # Two xdist workers must not run apt-get at once: the first takes the lock, the other waits.
        lock = tmp_path_factory.getbasetemp().parent / "chromium-install.lock"
        with lock.open("w") as handle:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
            if not CHROMIUM.exists():
                _install_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a loopback port (a real browser needs a real server); yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the live server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
