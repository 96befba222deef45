"""``runtime.MemoryReleaser``: memory the C allocator keeps is handed back on a schedule, and never when
there is nothing to call or the setting is 0."""

import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from indicator_exchange.app import create_app
from indicator_exchange.runtime import MemoryReleaser, _glibc_malloc_trim
from indicator_exchange.settings import Settings


class FakeTrim:
    def __init__(self) -> None:
        self.pads: list[int] = []

    def __call__(self, pad: int) -> int:
        self.pads.append(pad)
        return 1


def _threads() -> set[str]:
    return {thread.name for thread in threading.enumerate()}


def test_it_trims_on_its_schedule_until_stopped() -> None:
    trim = FakeTrim()
    releaser = MemoryReleaser(0.02, trim=trim)
    releaser.start()
    time.sleep(0.3)
    releaser.stop()
    stopped_at = len(trim.pads)
    time.sleep(0.1)
    assert stopped_at >= 3
    assert len(trim.pads) == stopped_at  # nothing after stop
    assert set(trim.pads) == {0}  # keep no padding at the top of the heap


def test_zero_never_trims() -> None:
    trim = FakeTrim()
    releaser = MemoryReleaser(0, trim=trim)
    releaser.start()
    time.sleep(0.1)
    releaser.stop()
    assert trim.pads == []


def test_glibc_trim_is_found_and_callable() -> None:
    trim = _glibc_malloc_trim()
    assert trim is not None  # this machine kind runs glibc; elsewhere the releaser is a no-op
    assert trim(0) in (0, 1)


def test_the_server_runs_one_while_it_serves(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/ix.db", memory_release_seconds=0.02)
    with TestClient(create_app(settings)):
        assert "ix-memory" in _threads()
    assert "ix-memory" not in _threads()
