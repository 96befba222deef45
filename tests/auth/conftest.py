"""Audit rows are written after the response; a failed write is only logged, so fail the test on it here."""

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _audit_writes_succeed(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    failures = [r for r in caplog.records if r.name.startswith("indicator_exchange.audit.") and r.levelname == "ERROR"]
    assert not failures, failures[0].getMessage()
