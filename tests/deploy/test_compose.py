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


class TestCompose:
    def test_has_database_migration_and_server(self) -> None:
        assert set(SERVICES) == {"db", "migrate", "server"}

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
