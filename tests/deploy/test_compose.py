"""docker-compose.yml matches the code: every IX_* variable is a setting, and the services run the right commands.

Docker is not runnable on the CI machine, so the file is parsed and checked against the Settings model and the
CLI instead.
"""

from typing import Any

import yaml
from typer.main import get_command

from indicator_exchange.cli import app
from indicator_exchange.settings import Settings
from tests.conftest import ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


SCALE = {name for name, service in SERVICES.items() if "scale" in service.get("profiles", [])}
ALWAYS = set(SERVICES) - SCALE


class TestCompose:
    def test_has_database_migration_and_server(self) -> None:
        assert {"db", "migrate", "server"} == ALWAYS

    def test_every_ix_variable_is_a_setting(self) -> None:
        fields = {f"IX_{name.upper()}" for name in Settings.model_fields}
        for name in ("migrate", "server"):
            variables = set(SERVICES[name]["environment"])
            assert variables <= fields, variables - fields
            assert "IX_DATABASE_URL" in variables

    def test_both_services_share_one_configuration(self) -> None:
        assert SERVICES["migrate"]["environment"] == SERVICES["server"]["environment"]

    def test_the_database_url_points_at_the_db_service(self) -> None:
        assert "@db:5432/" in SERVICES["server"]["environment"]["IX_DATABASE_URL"]

    def test_commands_exist_in_the_cli(self) -> None:
        root = get_command(app)
        commands = root.commands  # type: ignore[attr-defined]
        migrate = SERVICES["migrate"]["command"]
        serve = SERVICES["server"]["command"]
        assert migrate[:3] == ["indicator-exchange", "db", "upgrade"]
        assert "upgrade" in commands["db"].commands
        assert serve[:2] == ["indicator-exchange", "serve"]
        assert {"--host", "--port"} <= set(serve)

    def test_the_server_waits_for_a_successful_migration(self) -> None:
        depends = SERVICES["server"]["depends_on"]["migrate"]["condition"]
        assert depends == "service_completed_successfully"
        assert SERVICES["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"

    def test_the_community_key_is_required_not_defaulted(self) -> None:
        assert ":?" in SERVICES["server"]["environment"]["IX_COMMUNITY_KEY"]


class TestScaleProfile:
    """``docker compose --profile scale``: two instances behind haproxy, PgBouncer, a streaming replica."""

    def test_the_profile_has_instances_balancer_pooler_and_replica(self) -> None:
        assert {"server-a", "server-b", "balancer", "pgbouncer", "replica"} == SCALE

    def test_instances_share_one_configuration_of_real_settings(self) -> None:
        fields = {f"IX_{name.upper()}" for name in Settings.model_fields}
        a, b = SERVICES["server-a"]["environment"], SERVICES["server-b"]["environment"]
        assert a == b
        assert set(a) <= fields, set(a) - fields
        # Everything the single server is configured with, the scaled ones are too (same IX_* variables).
        assert set(SERVICES["server"]["environment"]) <= set(a)
        assert SERVICES["server-a"]["command"] == SERVICES["server-b"]["command"]
        assert SERVICES["server-a"]["command"][:2] == ["indicator-exchange", "serve"]

    def test_requests_go_through_the_pooler_sessions_and_reads_elsewhere(self) -> None:
        env = SERVICES["server-a"]["environment"]
        assert "@pgbouncer:" in env["IX_DATABASE_URL"]
        assert "@db:5432/" in env["IX_DIRECT_DATABASE_URL"]
        assert "@replica:5432/" in env["IX_READ_REPLICA_URLS"]
        assert SERVICES["pgbouncer"]["environment"]["POOL_MODE"] == "transaction"

    def test_the_replica_is_made_by_pg_basebackup_from_the_primary(self) -> None:
        entry = " ".join(SERVICES["replica"]["entrypoint"])
        assert "pg_basebackup -h db" in entry
        assert " -R " in entry
        assert SERVICES["replica"]["depends_on"]["db"]["condition"] == "service_healthy"

    def test_the_balancer_config_names_both_instances_and_checks_readiness(self) -> None:
        mounted = SERVICES["balancer"]["volumes"][0].split(":")[0]
        config = (ROOT / mounted).read_text()
        assert "balance roundrobin" in config
        assert "server-a:8000" in config
        assert "server-b:8000" in config
        assert "GET /readyz" in config
