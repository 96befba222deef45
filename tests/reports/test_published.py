"""Edge cases of the published figures: windows that start mid-history, copies, revocations."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.settings import Settings
from tests.fixtures.factories import envelope, make_collection, make_indicator, make_key, objects_url

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def _post(client: TestClient, collection, key, *objects) -> None:
    response = client.post(objects_url(collection), headers=key.post, json=envelope(*objects))
    assert response.status_code == 202
    assert response.json()["failure_count"] == 0, response.json()


def _totals(client: TestClient, key, start: datetime) -> dict[str, int]:
    params = {"from": start.isoformat(), "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    response = client.get("/api/v1/reports/sharing", headers=key.bearer, params=params)
    assert response.status_code == 200, response.text
    totals: dict[str, int] = response.json()["published"]["totals"]
    return totals


class TestWindowBoundaries:
    def test_only_what_happened_inside_the_window_counts(
        self, client: TestClient, session: Session, settings: Settings
    ) -> None:
        first, second = make_collection(session, title="A"), make_collection(session, title="B")
        detector = make_key(
            session, "det", kind="detector", clearance="red", write=[first, second], identity_ref=settings.identity_id
        )
        auditor = make_key(session, "auditor", kind="compliance", clearance="red")
        session.commit()
        ours = settings.identity_id
        _post(client, first, detector, make_indicator(1, created_by_ref=ours), make_indicator(2, created_by_ref=ours))
        time.sleep(0.01)
        start = datetime.now(UTC)
        time.sleep(0.01)
        # A copy of an existing version into another collection is not an event; a new version is.
        _post(client, second, detector, make_indicator(1, created_by_ref=ours))
        _post(client, first, detector, make_indicator(1, created_by_ref=ours, modified="2026-03-01T00:00:00.000Z"))
        _post(
            client,
            first,
            detector,
            make_indicator(2, created_by_ref=ours, modified="2026-03-01T00:00:00.000Z", revoked=True),
        )
        _post(client, first, detector, make_indicator(3, created_by_ref=ours))
        assert _totals(client, auditor, start) == {"created": 1, "versioned": 1, "revoked": 1, "expired": 0}
        before = start - timedelta(days=1)
        assert _totals(client, auditor, before) == {"created": 3, "versioned": 1, "revoked": 1, "expired": 0}
