"""STIX validation on TAXII POST, per collection policy, and the envelope's bounds (object cap, status size)
on both backends: an invalid object is a failure naming its property and is never stored, the rest of the
envelope goes on; ``basic`` stores it; what cannot be stored is refused under either policy."""

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.app import create_app
from indicator_exchange.store.models import ObjectVersion, Status
from tests.conftest import make_settings
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url

BROKEN_PATTERN = "[ipv4-addr:value = '46.91.113.9'"  # the partner feed's indicator: a missing bracket


def stored_ids(session: Session, collection: uuid.UUID) -> set[str]:
    session.expire_all()
    rows = session.execute(select(ObjectVersion.stix_id).where(ObjectVersion.collection_id == collection))
    return set(rows.scalars())


def failures_by_id(status: dict[str, Any]) -> dict[str, str]:
    return {f["id"]: f.get("message", "") for f in status.get("failures", [])}


@pytest.fixture
def writer(session: Session) -> tuple[uuid.UUID, Key]:
    collection = make_collection(session)
    key = make_key(session, "lab-a", read=[collection], write=[collection])
    session.commit()
    return collection, key


class TestStrict:
    def test_an_invalid_pattern_is_refused_naming_pattern_and_the_rest_is_stored(
        self, client: TestClient, session: Session, writer: tuple[uuid.UUID, Key]
    ) -> None:
        collection, key = writer
        bad = make_indicator(2, pattern=BROKEN_PATTERN)
        posted = client.post(
            objects_url(collection), headers=key.post, json=envelope(make_indicator(1), bad, make_indicator(3))
        )
        assert posted.status_code == 202, posted.text
        status = posted.json()
        assert (status["success_count"], status["failure_count"]) == (2, 1)
        assert "'pattern' is not a valid STIX pattern" in failures_by_id(status)[str(bad["id"])]
        assert stored_ids(session, collection) == {make_indicator(1)["id"], make_indicator(3)["id"]}

    def test_the_collections_are_strict_by_default(self, session: Session, writer: tuple[uuid.UUID, Key]) -> None:
        collection, _ = writer
        assert admin.update_collection(session, key=str(collection))["validation"] == "strict"

    @pytest.mark.parametrize(
        ("prop", "overrides"),
        [
            ("valid_until", {"valid_until": "2026-01-01T00:00:00Z"}),  # before valid_from
            ("created_by_ref", {"created_by_ref": "indicator--" + str(uuid.uuid4())}),
            ("valid_from", {"valid_from": None}),
        ],
    )
    def test_other_musts_are_refused_naming_the_property(
        self,
        client: TestClient,
        session: Session,
        writer: tuple[uuid.UUID, Key],
        prop: str,
        overrides: dict[str, Any],
    ) -> None:
        collection, key = writer
        bad = {k: v for k, v in make_indicator(2, **overrides).items() if v is not None}
        status = client.post(objects_url(collection), headers=key.post, json=envelope(bad)).json()
        assert status["failure_count"] == 1
        assert prop in failures_by_id(status)[str(bad["id"])]
        assert stored_ids(session, collection) == set()


class TestBasic:
    def test_a_basic_collection_stores_the_invalid_pattern_as_received(
        self, client: TestClient, session: Session
    ) -> None:
        collection = make_collection(session)
        admin.update_collection(session, key=str(collection), validation="basic")
        key = make_key(session, "lab-a", read=[collection], write=[collection])
        session.commit()
        bad = make_indicator(2, pattern=BROKEN_PATTERN)
        status = client.post(objects_url(collection), headers=key.post, json=envelope(bad)).json()
        assert (status["success_count"], status["failure_count"]) == (1, 0)
        got = client.get(objects_url(collection), headers=key.basic).json()
        assert got["objects"][0]["pattern"] == BROKEN_PATTERN

    def test_basic_still_refuses_what_cannot_be_stored(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        admin.update_collection(session, key=str(collection), validation="basic")
        key = make_key(session, "lab-a", read=[collection], write=[collection])
        session.commit()
        bad = make_indicator(2, description="a\x00b")
        status = client.post(objects_url(collection), headers=key.post, json=envelope(bad, make_indicator(1))).json()
        assert "NUL" in failures_by_id(status)[str(bad["id"])]
        assert stored_ids(session, collection) == {make_indicator(1)["id"]}


def nested(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    for _ in range(depth - 1):
        inner = {"a": inner}
    return inner


class TestUnstorable:
    @pytest.mark.parametrize(
        ("expected", "overrides"),
        [
            ("'name' contains a NUL", {"name": "exit\x00node"}),
            ("NUL", {"x_extra": {"k\x00": "v"}}),
            ("'x_deep' is nested deeper than the 254 levels", {"x_deep": nested(260)}),
            ("'modified'", {"modified": "\u0662\u0660\u0662\u0666-02-24T12:00:00.000Z"}),  # Arabic-Indic digits
            ("'valid_from'", {"valid_from": "\uff12\uff10\uff12\uff16-02-24T12:00:00Z"}),  # fullwidth digits
            ("'type'", {"type": "x-" + "a" * 100, "id": f"x-{'a' * 100}--{uuid.uuid4()}"}),  # longer than stored
            ("'modified'", {"modified": "2026-02-24T12:00:00." + "0" * 40 + "Z"}),
            ("'created_by_ref'", {"created_by_ref": "identity--" + "a" * 200}),
        ],
    )
    def test_per_object_failures_and_the_rest_stored(
        self,
        client: TestClient,
        session: Session,
        writer: tuple[uuid.UUID, Key],
        expected: str,
        overrides: dict[str, Any],
    ) -> None:
        collection, key = writer
        bad = make_indicator(2, **overrides)
        posted = client.post(objects_url(collection), headers=key.post, json=envelope(make_indicator(1), bad))
        assert posted.status_code == 202, posted.text
        status = posted.json()
        assert (status["success_count"], status["failure_count"]) == (1, 1)
        assert expected in failures_by_id(status)[str(bad["id"])]
        assert stored_ids(session, collection) == {make_indicator(1)["id"]}


class TestNumbers:
    """orjson reads an integer beyond 64 bits as a float (2**64 was stored and republished as
    1.8446744073709552e+19) and refuses a whole body for one number beyond a double: such a number fails its
    own object, and every number that is stored is republished exactly as it was sent."""

    @pytest.mark.parametrize(
        "literal", ["18446744073709551616", "-1" + "0" * 30, "1e400", "-1e400", "1" + "0" * 5000], ids=len
    )
    def test_a_number_that_cannot_be_kept_exactly_fails_its_object_alone(
        self, client: TestClient, session: Session, writer: tuple[uuid.UUID, Key], literal: str
    ) -> None:
        collection, key = writer
        good, bad = make_indicator(1), make_indicator(2)
        body = orjson.dumps(envelope(good, bad)).replace(
            f'"id":"{bad["id"]}"'.encode(), f'"id":"{bad["id"]}","x_n":{literal}'.encode()
        )
        posted = client.post(objects_url(collection), headers=key.post, content=body)
        assert posted.status_code == 202, posted.text
        status = posted.json()
        assert (status["success_count"], status["failure_count"]) == (1, 1), status
        assert "'x_n' holds a number that cannot be stored exactly" in failures_by_id(status)[str(bad["id"])]
        assert stored_ids(session, collection) == {good["id"]}

    def test_the_largest_integers_are_republished_exactly(
        self, client: TestClient, writer: tuple[uuid.UUID, Key]
    ) -> None:
        collection, key = writer
        obj = make_indicator(3)
        extremes = '"x_max":18446744073709551615,"x_min":-9223372036854775808,"x_f":1.5e300'
        body = orjson.dumps(envelope(obj)).replace(
            f'"id":"{obj["id"]}"'.encode(), f'"id":"{obj["id"]}",{extremes}'.encode()
        )
        assert client.post(objects_url(collection), headers=key.post, content=body).json()["success_count"] == 1
        text = client.get(f"{objects_url(collection)}{obj['id']}/", headers=key.basic).text
        assert "18446744073709551615" in text
        assert "-9223372036854775808" in text
        assert "1.5e+300" in text or "1.5e300" in text


@pytest.fixture
def bounded_client(db_url: str) -> Iterator[TestClient]:
    settings = make_settings(db_url, max_objects_per_envelope=5, max_status_failures=3)
    with TestClient(create_app(settings)) as client:
        yield client


class TestBounds:
    def test_an_envelope_over_the_object_cap_is_413_and_nothing_is_stored(
        self, bounded_client: TestClient, session: Session, writer: tuple[uuid.UUID, Key]
    ) -> None:
        collection, key = writer
        posted = bounded_client.post(
            objects_url(collection), headers=key.post, json=envelope(*(make_indicator(i) for i in range(6)))
        )
        assert posted.status_code == 413, posted.text
        assert posted.headers["content-type"] == "application/taxii+json;version=2.1"
        assert "IX_MAX_OBJECTS_PER_ENVELOPE" in posted.text
        assert "at most 5" in posted.text
        assert stored_ids(session, collection) == set()
        session.expire_all()
        assert session.scalar(select(func.count()).select_from(Status)) == 0

    def test_an_envelope_of_many_empty_objects_is_413(
        self, bounded_client: TestClient, session: Session, writer: tuple[uuid.UUID, Key]
    ) -> None:
        collection, key = writer
        body = b'{"objects":[' + b",".join([b"{}"] * 100_000) + b"]}"
        posted = bounded_client.post(objects_url(collection), headers=key.post, content=body)
        assert posted.status_code == 413, posted.text
        assert "100,000 objects" in posted.text

    def test_at_the_cap_is_accepted(
        self, bounded_client: TestClient, session: Session, writer: tuple[uuid.UUID, Key]
    ) -> None:
        collection, key = writer
        posted = bounded_client.post(
            objects_url(collection), headers=key.post, json=envelope(*(make_indicator(i) for i in range(5)))
        )
        assert posted.status_code == 202, posted.text
        assert posted.json()["success_count"] == 5

    def test_failures_beyond_the_cap_are_summarised_and_the_counts_stay_exact(
        self, bounded_client: TestClient, session: Session, writer: tuple[uuid.UUID, Key]
    ) -> None:
        collection, key = writer
        bad = [make_indicator(i, pattern=BROKEN_PATTERN) for i in range(5)]
        posted = bounded_client.post(objects_url(collection), headers=key.post, json=envelope(*bad))
        status = posted.json()
        assert (status["total_count"], status["failure_count"]) == (5, 5)
        assert [f["id"] for f in status["failures"]] == [o["id"] for o in bad[:3]]
        assert all("'pattern'" in f["message"] for f in status["failures"])
        assert "and 2 more failures are not listed" in status["failures"][2]["message"]
        again = bounded_client.get(f"/api1/status/{status['id']}/", headers=key.basic).json()
        assert again["failures"] == status["failures"]
        assert again["failure_count"] == 5
