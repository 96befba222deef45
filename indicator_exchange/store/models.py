"""SQLAlchemy 2 models of the store. Alembic owns the schema; the app never calls ``create_all``.

Times the service assigns or orders by (``date_added``, object versions) are integer microseconds since
the epoch: exact, portable between PostgreSQL and SQLite, and cheap to compare in keyset paging.
"""

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PortableJSON = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime that survives SQLite (which drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ApiRoot(Base):
    """A TAXII API root; ``name`` is its URL segment (``/{name}/``)."""

    __tablename__ = "api_root"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Collection(Base):
    """A TAXII collection. ``last_date_added`` is the per-collection clock that keeps ``date_added``
    unique and strictly increasing in commit order (writers lock this row). Deletes advance it too, so it
    changes whenever the collection's contents do."""

    __tablename__ = "collection"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    api_root_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_root.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text)
    alias: Mapped[str | None] = mapped_column(String(128))
    default_tlp: Mapped[int] = mapped_column(SmallInteger, default=2)
    # How incoming STIX is checked: "strict" (STIX 2.1 validation) or "basic" (common properties only).
    validation: Mapped[str] = mapped_column(String(8), default="strict", server_default="strict")
    last_date_added: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ObjectVersion(Base):
    """One version of one STIX object in one collection: the raw JSON beside the indexed columns.

    ``is_latest``/``is_first`` are maintained at write time (under the collection lock) so that the
    default ``match[version]=last`` poll is a plain index range scan.
    """

    __tablename__ = "object_version"
    __table_args__ = (
        UniqueConstraint("collection_id", "date_added"),
        UniqueConstraint("collection_id", "stix_id", "version"),
        Index("ix_object_version_latest", "collection_id", "is_latest", "date_added"),
        Index("ix_object_version_type", "collection_id", "stix_type", "date_added"),
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    stix_id: Mapped[str] = mapped_column(String(128))
    stix_type: Mapped[str] = mapped_column(String(64))
    spec_version: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(BigInteger)
    modified: Mapped[str | None] = mapped_column(String(40))
    date_added: Mapped[int] = mapped_column(BigInteger)
    is_latest: Mapped[bool] = mapped_column(Boolean, default=True)
    is_first: Mapped[bool] = mapped_column(Boolean, default=True)
    tlp: Mapped[int | None] = mapped_column(SmallInteger)
    created_by_ref: Mapped[str | None] = mapped_column(String(128))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    added_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    raw: Mapped[str] = mapped_column(Text)


class ObjectDeletion(Base):
    """An object's versions were deleted at this collection clock: a delete leaves no row to read by position,
    so whoever follows a collection by ``date_added`` (the matcher's deltas) reads this instead."""

    __tablename__ = "object_deletion"

    collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"), primary_key=True)
    date_added: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stix_id: Mapped[str] = mapped_column(String(128), primary_key=True)


class Status(Base):
    """A TAXII status resource: the per-object outcome of one POST to a collection."""

    __tablename__ = "status"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    api_root_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_root.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    principal_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16))
    request_timestamp: Mapped[str] = mapped_column(String(40))
    total_count: Mapped[int] = mapped_column(Integer)
    success_count: Mapped[int] = mapped_column(Integer)
    failure_count: Mapped[int] = mapped_column(Integer)
    pending_count: Mapped[int] = mapped_column(Integer)
    successes: Mapped[list[dict[str, object]]] = mapped_column(PortableJSON, default=list)
    failures: Mapped[list[dict[str, object]]] = mapped_column(PortableJSON, default=list)
    pendings: Mapped[list[dict[str, object]]] = mapped_column(PortableJSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Principal(Base):
    """Someone who calls the service: a partner lab, an internal detector, compliance, or an admin."""

    __tablename__ = "principal"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="partner")
    organisation: Mapped[str | None] = mapped_column(String(256))
    identity_ref: Mapped[str | None] = mapped_column(String(128))
    clearance: Mapped[int] = mapped_column(SmallInteger, default=2)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    objects_per_day: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """An API key: the public ``key_id`` plus the SHA-256 of a random 256-bit secret (never the secret)."""

    __tablename__ = "api_key"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    principal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principal.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuthEpoch(Base):
    """A single counter that database triggers raise on any change to principals, grants or keys' validity
    (migration 7b1e0c4d2a90); cached callers are valid only while it stands still."""

    __tablename__ = "auth_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger)


class Grant(Base):
    """What one principal may do in one collection."""

    __tablename__ = "grant"
    __table_args__ = (UniqueConstraint("principal_id", "collection_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    principal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("principal.id", ondelete="CASCADE"))
    collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"), index=True)
    can_read: Mapped[bool] = mapped_column(Boolean, default=False)
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)


class FeedSource(Base):
    """A partner's TAXII collection we pull from (or push to), with its durable bookmark.

    Credentials are never stored: ``credentials_ref`` names where to read them (``env:VAR`` or ``file:PATH``).
    """

    __tablename__ = "feed_source"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    direction: Mapped[str] = mapped_column(String(8), default="pull")
    collection_url: Mapped[str] = mapped_column(Text)
    credentials_ref: Mapped[str | None] = mapped_column(String(512))
    local_collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    interval_seconds: Mapped[int] = mapped_column(Integer, default=300)
    page_size: Mapped[int] = mapped_column(Integer, default=1000)
    max_tlp: Mapped[int] = mapped_column(SmallInteger, default=2)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    bookmark: Mapped[str | None] = mapped_column(String(64))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    objects_total: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected_total: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The live follower's status (``sync --follow``, docs/live.md): stream | long-poll | poll, connected since
    # (``None``: not connected), last heard from the partner, and the partner's position then.
    live_mode: Mapped[str | None] = mapped_column(String(16))
    live_connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    live_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    live_remote_position: Mapped[str | None] = mapped_column(String(64))


class SyncRejection(Base):
    """A pulled object that failed validation: recorded, never stored in a collection."""

    __tablename__ = "sync_rejection"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("feed_source.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    object_id: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text)


class DetectionRecord(Base):
    """Internal provenance: which detector reported what, feeding which indicator. Never shared.

    Holds no raw prompt text and no PII: only the indicator id, the detector's name and its figures.
    """

    __tablename__ = "detection_record"
    __table_args__ = (Index("ix_detection_record_indicator", "collection_id", "indicator_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    indicator_id: Mapped[str] = mapped_column(String(128))
    principal_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    detector: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    cluster: Mapped[str | None] = mapped_column(String(128))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    confidence: Mapped[int] = mapped_column(SmallInteger)
    accounts_linked: Mapped[int | None] = mapped_column(Integer)
    requests: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class IngestRefusal(Base):
    """A detection refused at ingest, with the reason (for the compliance report's exceptions)."""

    __tablename__ = "ingest_refusal"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    principal_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    collection_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    detector: Mapped[str | None] = mapped_column(String(128))
    line: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str | None] = mapped_column(String(32))
    field: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)


class AuditEvent(Base):
    """One audited request: who, when, what, how much, outcome. Append-only (a PostgreSQL trigger refuses
    UPDATE and DELETE; the application has no code path that changes a row).

    A read records the ``date_added`` range it served and the visibility it ran under instead of one row per
    object; ``audit.service.deliveries_of`` re-evaluates reads against the store to say who received what.
    No foreign keys: audit rows outlive the principals, keys and collections they name.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_principal_at", "principal_id", "at"),
        Index("ix_audit_event_delivery", "collection_id", "principal_id", "date_added_last"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    principal_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    principal_name: Mapped[str | None] = mapped_column(String(128))
    key_id: Mapped[str | None] = mapped_column(String(40))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    route: Mapped[str | None] = mapped_column(String(256))
    api_root: Mapped[str | None] = mapped_column(String(64))
    collection_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    object_id: Mapped[str | None] = mapped_column(String(256))
    filters: Mapped[dict[str, list[str]] | None] = mapped_column(PortableJSON)
    status_code: Mapped[int] = mapped_column(SmallInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    object_count: Mapped[int | None] = mapped_column(Integer)
    date_added_first: Mapped[int | None] = mapped_column(BigInteger)
    date_added_last: Mapped[int | None] = mapped_column(BigInteger)
    # The visibility a read ran under and the collection clock (last ``date_added``) it started from: what
    # ``deliveries_of`` needs to re-evaluate the read honestly after clearances or defaults change.
    clearance: Mapped[int | None] = mapped_column(SmallInteger)
    default_tlp: Mapped[int | None] = mapped_column(SmallInteger)
    collection_clock: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[str | None] = mapped_column(Text)
    # The request id of the log lines and the X-Request-ID answer (indicator_exchange.observe).
    request_id: Mapped[str | None] = mapped_column(String(64))
    # The id the worker gave the row (``audit.service.AuditRecord``): a retried write skips rows already stored.
    record_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class RateCounter(Base):
    """Per-key request and object counters in fixed windows (no per-process state: any worker may count).

    One row per key and ``scope``; an upsert moves it to the current ``window`` and keeps the previous
    window's count for a sliding estimate. ``window_no`` counts windows since the epoch.
    """

    __tablename__ = "rate_counter"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    window_no: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    previous_count: Mapped[int] = mapped_column(BigInteger, default=0)


class IndicatorFeedback(Base):
    """One partner verdict on one indicator (a sighting or an opinion), kept per organisation (docs/lifecycle.md).

    No foreign key to a collection: feedback outlives the copy it arrived with, and names indicators by STIX id.
    """

    __tablename__ = "indicator_feedback"
    __table_args__ = (
        UniqueConstraint("indicator_id", "feedback_id", "feedback_version"),
        Index("ix_indicator_feedback_indicator", "indicator_id", "organisation"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    indicator_id: Mapped[str] = mapped_column(String(128))
    feedback_id: Mapped[str] = mapped_column(String(128))
    feedback_version: Mapped[str] = mapped_column(String(40))
    feedback_type: Mapped[str] = mapped_column(String(16))  # sighting | opinion
    organisation: Mapped[str] = mapped_column(String(256))
    verdict: Mapped[str] = mapped_column(String(8))  # tp | fp | neutral
    opinion: Mapped[str | None] = mapped_column(String(32))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    collection_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    principal_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LifecycleEvent(Base):
    """What the lifecycle did to one of our indicators: ``extended`` (valid_until) or ``revoked`` (by feedback)."""

    __tablename__ = "lifecycle_event"
    __table_args__ = (Index("ix_lifecycle_event_indicator", "indicator_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    indicator_id: Mapped[str] = mapped_column(String(128))
    collection_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    organisations: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    version: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
