"""Principals, their API keys and their per-collection grants."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from indicator_exchange.store.models import ApiKey, AuthEpoch, Grant, Principal


def get_principal(session: Session, name: str) -> Principal | None:
    return session.execute(select(Principal).where(Principal.name == name)).scalar_one_or_none()


def get_principal_by_id(session: Session, principal_id: uuid.UUID) -> Principal | None:
    return session.get(Principal, principal_id)


def list_principals(session: Session) -> Sequence[Principal]:
    return session.execute(select(Principal).order_by(Principal.name)).scalars().all()


def add_principal(session: Session, principal: Principal) -> Principal:
    session.add(principal)
    session.flush()
    return principal


def get_key(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def key_with_principal(session: Session, key_id: str) -> tuple[ApiKey, Principal] | None:
    row = session.execute(
        select(ApiKey, Principal).join(Principal, Principal.id == ApiKey.principal_id).where(ApiKey.key_id == key_id)
    ).first()
    return (row[0], row[1]) if row else None


def auth_epoch(session: Session | Connection) -> int | None:
    """The counter that moves whenever authentication data changes (``None`` if its row is missing)."""
    value = session.execute(select(AuthEpoch.epoch).where(AuthEpoch.id == 1)).scalar_one_or_none()
    return None if value is None else int(value)


def list_keys(session: Session, principal_id: uuid.UUID | None = None) -> Sequence[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at)
    if principal_id is not None:
        query = query.where(ApiKey.principal_id == principal_id)
    return session.execute(query).scalars().all()


def add_key(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def touch_key(session: Session, key_id: str, when: datetime) -> None:
    session.execute(update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=when))


def get_grant(session: Session, principal_id: uuid.UUID, collection_id: uuid.UUID) -> Grant | None:
    return session.execute(
        select(Grant).where(Grant.principal_id == principal_id, Grant.collection_id == collection_id)
    ).scalar_one_or_none()


def list_grants(session: Session, principal_id: uuid.UUID | None = None) -> Sequence[Grant]:
    query = select(Grant).order_by(Grant.id)
    if principal_id is not None:
        query = query.where(Grant.principal_id == principal_id)
    return session.execute(query).scalars().all()


def set_grant(
    session: Session, principal_id: uuid.UUID, collection_id: uuid.UUID, *, can_read: bool, can_write: bool
) -> Grant:
    grant = get_grant(session, principal_id, collection_id)
    if grant is None:
        grant = Grant(principal_id=principal_id, collection_id=collection_id)
        session.add(grant)
    grant.can_read = can_read
    grant.can_write = can_write
    session.flush()
    return grant


def delete_grant(session: Session, grant: Grant) -> None:
    session.delete(grant)
    session.flush()
