"""Feedback posted to a partner's TAXII server reaches the producer through `sync` (issue 17): two partner
organisations' false-positive opinions on our indicator, pulled from the partner's live instance, revoke it here;
one organisation alone does not."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.admin import service as admin
from indicator_exchange.settings import get_settings
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope
from indicator_exchange.store.models import LifecycleEvent, ObjectVersion
from indicator_exchange.sync import service as sync
from tests.fixtures.factories import make_indicator
from tests.fixtures.peers import FAST_RETRY, Partner, add_source, local_collection, seed_local


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def opinion(identity: str, indicator_id: str, verdict: str) -> dict[str, Any]:
    now = stamp(datetime.now(UTC))
    return {
        "type": "opinion",
        "spec_version": "2.1",
        "id": f"opinion--{uuid.uuid4()}",
        "created": now,
        "modified": now,
        "created_by_ref": identity,
        "opinion": verdict,
        "object_refs": [indicator_id],
        "object_marking_refs": [Tlp.GREEN.marking_id],
    }


def principal_on(partner: Partner, *, kind: str = "partner") -> tuple[str, str]:
    """Another principal of the partner's instance with read/write on its collection: (identity, key:secret)."""
    tag = uuid.uuid4().hex[:8]
    identity = f"identity--{uuid.uuid4()}"
    engine = make_engine(partner.server.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            admin.create_principal(session, name=f"{kind}-{tag}", kind=kind, clearance="red", identity_ref=identity)
            admin.grant(session, principal=f"{kind}-{tag}", collection_id=partner.collection_id, read=True, write=True)
            key = admin.create_key(session, principal=f"{kind}-{tag}")
    finally:
        engine.dispose()
    return identity, f"{key['key_id']}:{key['secret']}"


def as_principal(partner: Partner, secret: str) -> Partner:
    return Partner(partner.server, partner.api_root, partner.collection_id, partner.identity, secret)


def latest(sessions: sessionmaker[Session], collection: uuid.UUID, stix_id: str) -> bool:
    with sessions() as session:
        return bool(
            session.execute(
                select(ObjectVersion.revoked).where(
                    ObjectVersion.collection_id == collection,
                    ObjectVersion.stix_id == stix_id,
                    ObjectVersion.is_latest.is_(True),
                )
            ).scalar_one()
        )


def test_a_false_positive_quorum_at_a_partner_revokes_our_indicator_through_sync(
    partner: Partner, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = get_settings().identity_id
    valid_from = datetime.now(UTC) - timedelta(hours=1)
    indicator = make_indicator(
        11,
        created_by_ref=ours,
        confidence=70,
        pattern="[ipv4-addr:value = '46.91.113.44']",
        valid_from=valid_from.strftime("%Y-%m-%dT%H:%M:%SZ"),
        created=stamp(valid_from),
        modified=stamp(valid_from),
    )
    published = local_collection(sessions, title="published")
    seed_local(sessions, published, [indicator])
    # The partner follows our feed (its admin stores our indicator as pulled), and two of its members vote.
    _, admin_secret = principal_on(partner, kind="admin")
    as_principal(partner, admin_secret).post([indicator])
    second_identity, second_secret = principal_on(partner)
    partner.post([opinion(partner.identity, str(indicator["id"]), "disagree")])

    monkeypatch.setenv("PARTNER_SECRET", partner.secret)
    inbox = local_collection(sessions, title="partner feedback")
    add_source(
        sessions,
        url=partner.discovery_url,
        api_root=partner.api_root,
        collection=str(partner.collection_id),
        target=inbox,
        credentials="env:PARTNER_SECRET",
    )
    assert sync.pull(sessions, "partner", retry=FAST_RETRY).outcome == "ok"
    assert latest(sessions, published, str(indicator["id"])) is False  # one organisation is not a quorum

    as_principal(partner, second_secret).post([opinion(second_identity, str(indicator["id"]), "strongly-disagree")])
    assert sync.pull(sessions, "partner", retry=FAST_RETRY).outcome == "ok"
    assert latest(sessions, published, str(indicator["id"])) is True
    with sessions() as session:
        event = session.execute(
            select(LifecycleEvent).where(
                LifecycleEvent.indicator_id == indicator["id"], LifecycleEvent.collection_id == published
            )
        ).scalar_one()
    assert event.action == "revoked"
    assert sorted(event.organisations) == sorted([partner.identity, second_identity])
