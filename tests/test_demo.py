"""`indicator-exchange demo` as a new user meets it: from a fresh directory, with no venv activated, every
printed example runs as printed; a busy port fails before anything is loaded; a re-run revokes the old keys."""

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.demo import DEMO_PRINCIPALS, load_demo
from indicator_exchange.settings import Settings
from indicator_exchange.stix.objects import inspect_object
from indicator_exchange.stix.validation import validate_object
from indicator_exchange.store.models import ObjectVersion
from tests.fixtures.live_server import IX, free_port


def user_env() -> dict[str, str]:
    """The environment of a shell without the venv on PATH and without IX_* settings."""
    venv_bin = str(Path(IX).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return {k: v for k, v in os.environ.items() if not k.startswith(("IX_", "VIRTUAL_ENV", "PYTHON"))} | {"PATH": path}


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`indicator-exchange demo --port P` in a fresh directory; yields (printed text, base URL)."""
    port = free_port()
    process = subprocess.Popen(
        [IX, "demo", "--port", str(port)],
        cwd=tmp_path,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:
            printed.append(line)
            if "API docs:" in line:
                break
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "".join(printed)
            assert time.monotonic() < deadline, "".join(printed)
            time.sleep(0.1)
        yield "".join(printed), base
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_every_printed_example_runs_as_printed(demo_server: tuple[str, str], tmp_path: Path) -> None:
    printed, base = demo_server
    commands = [line.strip() for line in printed.splitlines() if line.startswith("    ") and "key id" not in line]
    assert len(commands) == 3, printed  # curl, the venv's python with taxii2-client, the CLI
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outputs = []
    for command in commands:
        done = subprocess.run(
            command, shell=True, cwd=elsewhere, env=user_env(), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    curl, python, cli = outputs
    assert '"objects"' in curl
    assert base in printed
    assert int(python.strip()) > 0
    assert "distillation" in cli
    assert list(elsewhere.iterdir()) == []  # the CLI example used the demo's database, made none here


def test_a_busy_port_fails_before_loading_anything(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [IX, "demo", "--port", str(port)], cwd=tmp_path, env=user_env(), capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is not free" in done.stderr
    assert f"make demo PORT={port + 1}" in done.stderr
    assert "secret" not in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_rerun_revokes_the_previous_demo_keys(session: Session, settings: Settings) -> None:
    first = load_demo(session, settings)
    second = load_demo(session, settings)
    assert second.revoked == len(DEMO_PRINCIPALS)
    for name in DEMO_PRINCIPALS:
        keys = {k["key_id"]: k for k in admin.list_keys(session, principal=name)}
        assert keys[first.keys[name]["key_id"]]["revoked_at"] is not None
        assert keys[second.keys[name]["key_id"]]["revoked_at"] is None
        assert sum(k["revoked_at"] is None for k in keys.values()) == 1
    assert re.search(r"revoked the 3 of the previous run", second.describe("http://127.0.0.1:8000"))


def test_everything_the_demo_stores_passes_strict_validation(session: Session, settings: Settings) -> None:
    """The demo (our converter's output for the Hydra scenario) must be what a strict collection accepts."""
    load_demo(session, settings)
    raws = session.execute(select(ObjectVersion.raw)).scalars().all()
    assert len(raws) > 10
    for raw in raws:
        obj = orjson.loads(raw)
        inspect_object(obj)
        assert validate_object(obj) is None, obj["id"]
