"""Schemathesis, every check, against a live server (issue 14 §8): 0 server errors and 0 check failures.

Run once as an admin key and once as a partner key, each on its own PostgreSQL database: the admin run
creates, changes and revokes what the generator invents. The default run is a small fixed budget (seeded, a
few examples per operation, the examples and fuzzing phases, admin and partner side by side); `make
test-slow` adds the coverage phase (boundary values of every parameter) and the stateful phase (sequences
of calls linked by the ids they return), with a larger budget.

The configuration (``schemathesis.toml``, written per run) says two things the document cannot:
- which API root and collection exist (fixed path values), so that generated requests reach the store
  instead of stopping at a 404; and which principal and key the admin run may change, rotate and revoke
  (schemathesis reuses ids it has seen in answers: left free, it revokes the very key it runs with);
- that a 400 answers some schema-valid requests: a ``next`` token the server did not issue (tokens are
  bound to a collection and filters, TAXII 2.1 §3.4), a report window whose end is before its start, a
  reserved API root name. No schema can express those, so ``positive_data_acceptance`` accepts a 400 —
  and every other check, ``not_a_server_error`` first, stays as strict as schemathesis makes it.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker
from tests.fixtures.factories import Key, make_collection, make_indicator, make_key
from tests.fixtures.live_server import LiveServer, live_server
from tests.fixtures.postgres import drop_database, fresh_database

ST = str(Path(sys.executable).parent / "st")
SEED = 20261203


@dataclass(frozen=True)
class Target:
    server: LiveServer
    admin: Key
    partner: Key
    collection: uuid.UUID
    victim: Key  # what the admin run may change, rotate and revoke: never the key it runs with


@pytest.fixture
def target(pg_admin_url: str, request: pytest.FixtureRequest) -> Iterator[Target]:
    name = f"ix_schemathesis_{os.environ['IX_TEST_RUN_ID']}_{request.node.name[-40:]}".lower()
    name = "".join(c if c.isalnum() else "_" for c in name)[:63]
    url = fresh_database(pg_admin_url, name)
    migrate.upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            collection = make_collection(session, alias="main")
            admin = make_key(session, "ops", kind="admin", clearance="red", read=[collection], write=[collection])
            partner = make_key(session, "lab-a", read=[collection], write=[collection])
            victim = make_key(session, "victim", read=[collection])
            session.commit()
    finally:
        engine.dispose()
    with live_server(url) as server:
        posted = httpx.post(
            f"{server.base}/api1/collections/{collection}/objects/",
            headers=partner.post,
            json={"objects": [make_indicator(n) for n in range(3)]},
        )
        assert posted.status_code == 202, posted.text
        yield Target(server, admin, partner, collection, victim)
    drop_database(pg_admin_url, name)


def config(target: Target, directory: Path) -> Path:
    path = directory / "schemathesis.toml"
    path.write_text(
        f"""
[parameters]
"path.api_root" = "api1"
"path.collection_id" = "{target.collection}"
"path.name" = "{target.victim.principal}"
"path.principal" = "{target.victim.principal}"
"path.key_id" = "{target.victim.key_id}"

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]
"""
    )
    return path


def st_command(target: Target, key: Key, directory: Path, *, examples: int, deep: bool) -> list[str]:
    """``st run`` with every check, as ``key``; the fast pass skips the coverage and stateful phases."""
    phases = "examples,coverage,fuzzing,stateful" if deep else "examples,fuzzing"
    return [
        ST,
        "--config-file",
        str(config(target, directory)),
        "--no-color",
        "run",
        f"{target.server.base}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--seed",
        str(SEED),
        "--phases",
        phases,
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--header",
        f"Authorization: Bearer {key.key_id}.{key.secret}",
        "--request-timeout",
        "30",
    ]


def run_schemathesis(target: Target, directory: Path, *, examples: int, deep: bool) -> dict[str, str]:
    """One run as the admin key and one as the partner key, side by side; fails (with the output) unless both
    report no failure, no error and no server error."""
    runs = {}
    for who, key in (("admin", target.admin), ("partner", target.partner)):
        workdir = directory / who
        workdir.mkdir()
        runs[who] = subprocess.Popen(
            st_command(target, key, workdir, examples=examples, deep=deep),
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    outputs = {who: process.communicate(timeout=3600)[0] for who, process in runs.items()}
    for who, process in runs.items():
        assert process.returncode == 0, f"schemathesis as {who}:\n{outputs[who][-20_000:]}"
        assert "Server error" not in outputs[who], outputs[who][-20_000:]
        lines = outputs[who].splitlines()
        summary = [line for line in lines if " generated, " in line or line.startswith("=")][-2:]
        warnings = [line.strip() for line in lines if line.strip().startswith("⚠️")]
        print(f"schemathesis as {who}: {' | '.join(summary + warnings)}")  # shown with -s or -rP
    return outputs


@pytest.mark.timeout(300)  # two schemathesis processes and a server on shared cores; typically well under
def test_fast_pass(target: Target, tmp_path: Path) -> None:
    run_schemathesis(target, tmp_path, examples=5, deep=False)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_deep_pass(target: Target, tmp_path: Path) -> None:
    run_schemathesis(target, tmp_path, examples=100, deep=True)
