"""Feed sources: credentials only by reference (environment variable or file), never in clear, never echoed."""

import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.errors import BadRequest
from indicator_exchange.store.engine import session_scope
from indicator_exchange.sync import service as sync
from tests.fixtures.peers import FAST_RETRY, Partner, add_source, local_collection, source_row


class TestResolveCredentials:
    def test_from_an_environment_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("IX_TEST_FEED_SECRET", " user:pass\n")
        assert sync.resolve_credentials("env:IX_TEST_FEED_SECRET") == "user:pass"

    def test_from_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "secret").write_text("Bearer abc.def\n")
        assert sync.resolve_credentials(f"file:{tmp_path / 'secret'}") == "Bearer abc.def"

    def test_none_means_anonymous(self) -> None:
        assert sync.resolve_credentials(None) is None

    @pytest.mark.parametrize(
        ("ref", "named"),
        [("env:IX_TEST_UNSET_FEED_SECRET", "IX_TEST_UNSET_FEED_SECRET"), ("file:/nonexistent/secret", "/nonexistent")],
    )
    def test_a_missing_reference_names_the_reference(self, ref: str, named: str) -> None:
        with pytest.raises(BadRequest, match=named):
            sync.resolve_credentials(ref)

    def test_a_value_in_clear_is_refused_without_echoing_it(self) -> None:
        with pytest.raises(BadRequest) as raised:
            sync.resolve_credentials("user:hunter2")
        assert "hunter2" not in str(raised.value)


class TestCreateSource:
    @pytest.mark.parametrize(
        ("url", "api_root", "credentials"),
        [
            ("https://lab-b.example/taxii2/", "feeds", "user:hunter2"),
            ("https://user:hunter2@lab-b.example/taxii2/", "feeds", None),
            ("https://lab-b.example/taxii2/", "https://token-hunter2@lab-b.example/feeds/", None),
        ],
    )
    def test_credentials_in_clear_are_refused(
        self, sessions: sessionmaker[Session], url: str, api_root: str, credentials: str | None
    ) -> None:
        target = local_collection(sessions)
        with session_scope(sessions) as session, pytest.raises(BadRequest) as raised:
            sync.create_source(
                session,
                name="lab-b",
                url=url,
                api_root=api_root,
                remote_collection="c",
                local_collection=target,
                credentials_ref=credentials,
            )
        assert "hunter2" not in str(raised.value)

    def test_the_collection_url_is_built_from_discovery_root_and_id(self, sessions: sessionmaker[Session]) -> None:
        target = local_collection(sessions)
        with session_scope(sessions) as session:
            created = sync.create_source(
                session,
                name="lab-b",
                url="https://lab-b.example/taxii2/",
                api_root="feeds",
                remote_collection="91a7b528-80eb-42ed-a74d-c6fbd5a26116",
                local_collection=target,
                credentials_ref="env:LAB_B",
            )
        assert (
            created["collection_url"] == "https://lab-b.example/feeds/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/"
        )


class TestCredentialFailuresAreOutcomes:
    """A bad credential ends the run as ``error`` with a message that does not contain it; no traceback."""

    def pull_with(self, sessions: sessionmaker[Session], ref: str) -> sync.SyncResult:
        target: uuid.UUID = local_collection(sessions)
        add_source(sessions, url="http://127.0.0.1:9/api1/", collection="c", target=target, credentials=ref)
        return sync.pull(sessions, "partner", retry=FAST_RETRY)

    def test_an_unset_variable(self, sessions: sessionmaker[Session]) -> None:
        result = self.pull_with(sessions, "env:IX_TEST_UNSET_FEED_SECRET")
        assert result.outcome == "error"
        assert "IX_TEST_UNSET_FEED_SECRET" in str(result.error)
        assert source_row(sessions).last_outcome == "error"

    def test_a_value_that_is_not_a_credential(
        self, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("IX_TEST_FEED_SECRET", "hunter2-without-a-user")
        result = self.pull_with(sessions, "env:IX_TEST_FEED_SECRET")
        assert result.outcome == "error"
        assert "hunter2" not in str(result.error)
        assert "hunter2" not in str(source_row(sessions).last_error)


def test_a_bearer_credential_from_a_file(partner: Partner, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    key_id, secret = partner.secret.split(":", 1)
    (tmp_path / "token").write_text(f"Bearer {key_id}.{secret}\n")
    partner.post([{"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}", "value": "1.2.3.4"}])
    target = local_collection(sessions)
    add_source(
        sessions,
        url=partner.discovery_url,
        api_root=partner.api_root,
        collection=str(partner.collection_id),
        target=target,
        credentials=f"file:{tmp_path / 'token'}",
    )
    result = sync.pull(sessions, "partner", retry=FAST_RETRY)
    assert (result.outcome, result.stored) == ("ok", 1), result.summary()
