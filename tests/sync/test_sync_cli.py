"""The sync commands end to end, as an operator runs them: ``admin source create|list`` and ``sync`` in
subprocesses against a live partner; credentials only by reference, secrets never in the database or output."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.store import sources
from indicator_exchange.store.models import Base
from tests.conftest import engine_for
from tests.fixtures.factories import make_indicator
from tests.fixtures.peers import (
    Awkwardness,
    Partner,
    add_source,
    awkward_taxii,
    date_added,
    local_collection,
    local_versions,
    source_row,
    stored_ids,
)

IX = str(Path(sys.executable).parent / "indicator-exchange")
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def ix(db_url: str, *args: str, env: dict[str, str] | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [IX, *args],
        env={**os.environ, "IX_DATABASE_URL": db_url, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stderr
    return done


def spawn(db_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "IX_DATABASE_URL": db_url}
    return subprocess.Popen([IX, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def database_text(db_url: str) -> str:
    """Every row of every table, as text: to prove what is not in it."""
    with engine_for(db_url).connect() as conn:
        return "\n".join(
            repr(row) for table in Base.metadata.sorted_tables for row in conn.execute(text(f'SELECT * FROM "{table}"'))
        )


def create_source(db_url: str, partner: Partner, target: uuid.UUID, *extra: str) -> str:
    args = ["--url", partner.discovery_url, "--api-root", partner.api_root]
    args += ["--collection-id", str(partner.collection_id), "--target", str(target), *extra]
    done = ix(db_url, "admin", "source", "create", "lab-b", *args)
    return done.stdout + done.stderr


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class TestSyncCommand:
    def test_create_sync_and_list_a_source(
        self, partner: Partner, db_url: str, sessions: sessionmaker[Session]
    ) -> None:
        partner.post([make_indicator(n) for n in range(20)])
        target = local_collection(sessions)
        env = {"PARTNER_SECRET": partner.secret}
        output = create_source(db_url, partner, target, "--credentials", "env:PARTNER_SECRET", "--page-size", "7")
        run = ix(db_url, "sync", "--once", "--json", env=env)
        [line] = run.stdout.splitlines()
        summary = json.loads(line)
        assert (summary["source"], summary["outcome"], summary["pages"], summary["stored"]) == ("lab-b", "ok", 3, 20)
        listed = ix(db_url, "admin", "source", "list", "--json")
        [source] = json.loads(listed.stdout)
        assert source["credentials_ref"] == "env:PARTNER_SECRET"
        assert (source["last_outcome"], source["bookmark"], source["objects_total"]) == ("ok", summary["bookmark"], 20)
        assert source["last_success_at"] is not None
        assert len(local_versions(sessions, target)) == 20
        plain = ix(db_url, "sync", "--source", "lab-b", env=env)
        assert plain.stdout.startswith("lab-b: ok; 1 page, 1 received, 0 stored, 1 already present")
        secret = partner.secret.split(":", 1)[1]
        for shown in (output, run.stdout, run.stderr, listed.stdout, plain.stdout, plain.stderr):
            assert secret not in shown
        assert secret not in database_text(db_url)

    @pytest.mark.parametrize(
        ("url", "credentials"),
        [
            (None, "lab-b:hunter2-not-a-reference"),
            (None, "hunter2-not-a-reference"),
            ("http://lab-b:hunter2-not-a-reference@127.0.0.1:9/taxii2/", None),
        ],
    )
    def test_credentials_in_clear_are_refused(
        self, db_url: str, sessions: sessionmaker[Session], url: str | None, credentials: str | None
    ) -> None:
        target = local_collection(sessions)
        args = ["--url", url or "http://127.0.0.1:9/taxii2/", "--api-root", "feeds", "--collection-id", "c"]
        args += ["--target", str(target), *(["--credentials", credentials] if credentials else [])]
        refused = ix(db_url, "admin", "source", "create", "lab-b", *args, code=1)
        assert refused.stderr.startswith("error: ")
        assert "hunter2" not in refused.stdout + refused.stderr
        with sessions() as session:
            assert sources.list_sources(session) == []
        assert "hunter2" not in database_text(db_url)

    def test_wrong_credentials_fail_without_showing_them(
        self, partner: Partner, db_url: str, sessions: sessionmaker[Session], tmp_path: Path
    ) -> None:
        target = local_collection(sessions)
        secret_file = tmp_path / "lab-b.secret"
        secret_file.write_text(partner.secret.split(":")[0] + ":hunter2-wrong-secret\n")
        add_source(
            sessions,
            name="lab-b",
            url=partner.discovery_url,
            api_root=partner.api_root,
            collection=str(partner.collection_id),
            target=target,
            credentials=f"file:{secret_file}",
        )
        run = ix(db_url, "sync", "--once", "--json", code=1)
        summary = json.loads(run.stdout)
        assert summary["outcome"] == "error"
        assert "401" in summary["error"]
        assert source_row(sessions, "lab-b").last_outcome == "error"
        assert "hunter2" not in run.stdout + run.stderr
        assert "hunter2" not in database_text(db_url)


class TestStoppingCleanly:
    def test_sigterm_mid_pull_stops_after_the_page_and_the_next_run_resumes(
        self, db_url: str, sessions: sessionmaker[Session]
    ) -> None:
        objects = [(date_added(n // 3), make_indicator(n)) for n in range(20)]  # ties across pages too
        target = local_collection(sessions)
        with awkward_taxii(objects, Awkwardness(delay=0.2)) as server:
            add_source(sessions, name="slow", url=server.api_root_url, collection="c", target=target, page_size=2)
            process = spawn(db_url, "sync", "--once", "--json")
            wait_for(lambda: source_row(sessions, "slow").objects_total > 0)
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=10)
            assert process.returncode == 0, err
            summary = json.loads(out)
            assert summary["outcome"] == "stopped"
            assert 0 < summary["stored"] < 20
            assert "stopping after the current page" in err
            assert len(stored_ids(sessions, target)) == summary["stored"]
            server.awkwardness.delay = 0
            resumed = json.loads(ix(db_url, "sync", "--once", "--json").stdout)
        assert resumed["outcome"] == "ok"
        assert summary["stored"] + resumed["stored"] == 20
        assert stored_ids(sessions, target) == sorted(str(obj["id"]) for _, obj in objects)

    def test_sigterm_between_runs_exits_at_once(self, db_url: str, sessions: sessionmaker[Session]) -> None:
        target = local_collection(sessions)
        with awkward_taxii([(date_added(n), make_indicator(n)) for n in range(3)]) as server:
            add_source(sessions, name="quick", url=server.api_root_url, collection="c", target=target)
            process = spawn(db_url, "sync", "--every", "1h", "--json")
            wait_for(lambda: source_row(sessions, "quick").last_outcome == "ok")
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=10)
        assert time.monotonic() - started < 5
        assert process.returncode == 0
        assert json.loads(out)["stored"] == 3
