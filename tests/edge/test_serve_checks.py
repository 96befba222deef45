"""What `serve` refuses before a worker starts: bad TLS files (one line, exit 1, no traceback) and a
PostgreSQL connection budget the server cannot hold."""

import os
import subprocess
from pathlib import Path

import pytest

from indicator_exchange.serving import StartupRefused, check_connection_budget, check_tls
from indicator_exchange.store.engine import PoolBudget, connection_allowance
from tests.conftest import make_settings
from tests.fixtures.live_server import IX, free_port, self_signed


def _serve(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IX, "serve", "--port", str(free_port()), *args],
        env=dict(os.environ, IX_DATABASE_URL=database_url, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


class TestTls:
    @pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
    def test_a_missing_key_file_is_one_line(self, db_url: str, tmp_path: Path) -> None:
        cert, _ = self_signed(tmp_path)
        done = _serve(db_url, "--tls-cert", str(cert), "--tls-key", str(tmp_path / "missing.pem"))
        assert done.returncode == 1
        assert done.stderr.strip() == f"error: --tls-key {tmp_path / 'missing.pem'}: no such file"
        assert "Traceback" not in done.stderr

    def test_a_key_that_is_not_a_key(self, tmp_path: Path) -> None:
        cert, _ = self_signed(tmp_path)
        garbage = tmp_path / "garbage.pem"
        garbage.write_text("not a key\n")
        with pytest.raises(StartupRefused, match="cannot use --tls-cert"):
            check_tls(str(cert), str(garbage))

    def test_a_key_that_does_not_match_the_certificate(self, tmp_path: Path) -> None:
        cert, _ = self_signed(tmp_path)
        other = tmp_path / "other"
        other.mkdir()
        _, other_key = self_signed(other)
        with pytest.raises(StartupRefused, match="cannot use --tls-cert"):
            check_tls(str(cert), str(other_key))

    def test_a_good_pair_passes(self, tmp_path: Path) -> None:
        cert, key = self_signed(tmp_path)
        check_tls(str(cert), str(key))


class TestPoolBudget:
    @pytest.mark.parametrize("total", [4, 5, 10, 20, 33, 100])
    def test_every_connection_is_accounted_for(self, total: int) -> None:
        budget = PoolBudget.of(total)
        assert budget.total == total
        assert min(budget.request_pool, budget.bookkeeping_pool, budget.loop_connections) >= 1
        assert budget.listen_connections == 1  # live.listener's LISTEN connection is one of the worker's N
        assert budget.direct == budget.loop_connections + budget.listen_connections

    def test_the_default_fits_four_workers_on_a_default_server(self) -> None:
        settings = make_settings("sqlite://")
        assert 4 * settings.connections_per_worker <= 100 - 3

    def test_the_deprecated_pool_size_still_means_something(self) -> None:
        assert make_settings("sqlite://", db_pool_size=10).connections_per_worker == 20
        assert make_settings("sqlite://", db_pool_size=10, db_connections_per_worker=8).connections_per_worker == 8


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
class TestConnectionBudget:
    def test_refused_when_workers_need_more_than_the_server_allows(self, db_url: str) -> None:
        maximum, reserved, _ = connection_allowance(db_url)
        per_worker = (maximum - reserved) // 2 + 1
        settings = make_settings(db_url, db_connections_per_worker=per_worker)
        with pytest.raises(StartupRefused, match=r"2 workers x \d+ connections .* but the database allows"):
            check_connection_budget(settings, 2)

    def test_serve_refuses_with_one_line(self, db_url: str) -> None:
        maximum, reserved, _ = connection_allowance(db_url)
        done = _serve(db_url, "--workers", "2", IX_DB_CONNECTIONS_PER_WORKER=str(maximum))
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: 2 workers x"), done.stderr
        assert f"max_connections {maximum} - {reserved} reserved" in lines[0]

    def test_a_budget_that_fits_passes(self, db_url: str) -> None:
        assert check_connection_budget(make_settings(db_url, db_connections_per_worker=4), 1) is None

    def test_a_database_that_does_not_answer_is_a_refusal(self, db_url: str) -> None:
        settings = make_settings(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
        with pytest.raises(StartupRefused, match="cannot read max_connections"):
            check_connection_budget(settings, 1)
