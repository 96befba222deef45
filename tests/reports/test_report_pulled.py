"""Objects pulled from partner feeds count as received from that feed, with its rejections as exceptions.

A pull needs a remote TAXII server, so this test stores what a pull stores (versions with no principal, in the
feed's local collection, plus the feed's rejections) through the store functions the sync service uses.
"""

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy.orm import Session

from indicator_exchange.reports.context import ReportRequest
from indicator_exchange.reports.service import build_report
from indicator_exchange.settings import Settings
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.store import objects as store
from indicator_exchange.store import sources
from indicator_exchange.sync import service as sync
from tests.fixtures.factories import make_collection, make_indicator

THEIRS = "identity--6a0f4f9e-7a55-4a43-9c8e-2f4f1d8e0b11"


@pytest.fixture
def pulled(session: Session) -> dict[str, object]:
    local = make_collection(session, title="From lab-c", alias="from-lab-c")
    sync.create_source(
        session,
        name="lab-c-feed",
        url="https://lab-c.example/taxii2/",
        api_root="feeds",
        remote_collection="c0ffee00-0000-4000-8000-000000000001",
        local_collection=local,
        credentials_ref=None,
    )
    objects = [make_indicator(100 + n, created_by_ref=THEIRS, tlp=Tlp.AMBER) for n in range(3)]
    store.lock_collection(session, local)
    store.write_versions(
        session,
        local,
        [
            store.NewVersion(
                stix_id=str(o["id"]),
                stix_type="indicator",
                spec_version="2.1",
                version=1,
                modified=None,
                tlp=int(Tlp.AMBER),
                created_by_ref=THEIRS,
                revoked=False,
                raw=orjson.dumps(o).decode(),
            )
            for o in objects
        ],
        now_us=int(datetime.now(UTC).timestamp() * 1_000_000),
        added_by=None,
    )
    source = sources.get_source(session, "lab-c-feed")
    assert source is not None
    sources.add_rejections(session, source.id, [("indicator--bad", "'spec_version' must be '2.1'")])
    session.commit()
    return {"collection": str(local)}


def _report(session: Session, settings: Settings, **kwargs: object):
    now = datetime.now(UTC)
    request = ReportRequest(start=now - timedelta(hours=1), end=now + timedelta(hours=1), **kwargs)
    return build_report(session, request, identity=settings.identity_id, organisation=settings.organisation_name)


class TestPulledObjects:
    def test_pulled_objects_are_received_not_published(self, session: Session, settings: Settings, pulled) -> None:
        report = _report(session, settings)
        assert report.published.totals.created == 0
        [row] = report.received.rows
        assert (row.partner, row.via, row.collection_id) == ("lab-c-feed", "pull", pulled["collection"])
        assert (row.objects, row.indicators, row.failed) == (3, 3, 1)
        assert report.marking == "TLP:AMBER"
        [rejection] = report.exceptions.rejections
        assert (rejection.partner, rejection.via, rejection.object_id) == ("lab-c-feed", "pull", "indicator--bad")

    def test_partner_filter_by_feed_name(self, session: Session, settings: Settings, pulled) -> None:
        report = _report(session, settings, partner="lab-c-feed")
        assert [r.partner for r in report.received.rows] == ["lab-c-feed"]
        assert report.shared.rows == []
        assert report.exceptions.keys_created == []

    def test_clearance_below_the_feed_hides_it(self, session: Session, settings: Settings, pulled) -> None:
        report = _report(session, settings, clearance=Tlp.GREEN)
        assert report.received.objects == 0
        assert report.marking == "TLP:CLEAR"
