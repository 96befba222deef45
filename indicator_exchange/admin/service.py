"""Administration shared by the CLI and the admin HTTP API: API roots, collections, principals, keys, grants,
and the audit trail.

Every function returns plain dicts (what ``--json`` prints and the admin API answers) and never commits.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import Enum

from sqlalchemy.orm import Session

from indicator_exchange.audit import service as audit
from indicator_exchange.auth.keys import bearer_token, hash_secret, new_key
from indicator_exchange.auth.service import PRINCIPAL_KINDS
from indicator_exchange.errors import BadRequest, Conflict, NotFound
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.stix.validation import POLICIES, STRICT
from indicator_exchange.store import catalog, principals
from indicator_exchange.store.models import ApiKey, ApiRoot, Collection, Grant, Principal

_ROOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_ROOT_NAMES = frozenset({"taxii2", "api", "docs", "redoc", "openapi.json", "ui", "healthz", "static"})


def root_dict(root: ApiRoot) -> dict[str, object]:
    return {"id": str(root.id), "name": root.name, "title": root.title, "description": root.description}


def collection_dict(collection: Collection) -> dict[str, object]:
    return {
        "id": str(collection.id),
        "api_root_id": str(collection.api_root_id),
        "title": collection.title,
        "description": collection.description,
        "alias": collection.alias,
        "default_tlp": Tlp(collection.default_tlp).label,
        "validation": collection.validation,
    }


def principal_dict(principal: Principal) -> dict[str, object]:
    return {
        "id": str(principal.id),
        "name": principal.name,
        "kind": principal.kind,
        "organisation": principal.organisation,
        "identity_ref": principal.identity_ref,
        "clearance": Tlp(principal.clearance).label,
        "requests_per_minute": principal.requests_per_minute,
        "objects_per_day": principal.objects_per_day,
        "is_active": principal.is_active,
    }


def key_dict(key: ApiKey, principal_name: str | None = None) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "principal": principal_name,
        "created_at": key.created_at.isoformat() if key.created_at else None,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
    }


def grant_dict(grant: Grant, principal_name: str) -> dict[str, object]:
    return {
        "principal": principal_name,
        "collection_id": str(grant.collection_id),
        "read": grant.can_read,
        "write": grant.can_write,
    }


def create_api_root(session: Session, *, name: str, title: str, description: str | None = None) -> dict[str, object]:
    if not _ROOT_NAME.fullmatch(name) or name.lower() in RESERVED_ROOT_NAMES:
        raise BadRequest(f"API root name {name!r} must be a URL segment (letters, digits, _.-) and not reserved")
    if catalog.get_api_root(session, name) is not None:
        raise Conflict(f"API root {name!r} already exists")
    return root_dict(catalog.add_api_root(session, name=name, title=title, description=description))


def list_api_roots(session: Session) -> list[dict[str, object]]:
    return [root_dict(root) for root in catalog.list_api_roots(session)]


def create_collection(
    session: Session,
    *,
    api_root: str,
    title: str,
    collection_id: uuid.UUID | None = None,
    description: str | None = None,
    alias: str | None = None,
    default_tlp: str = "amber",
    validation: str = STRICT,
) -> dict[str, object]:
    root = catalog.get_api_root(session, api_root)
    if root is None:
        raise NotFound(f"there is no API root {api_root!r}")
    if collection_id is not None and catalog.get_collection_by_id(session, collection_id) is not None:
        raise Conflict(f"collection {collection_id} already exists")
    if alias is not None and catalog.find_collection(session, root.id, alias) is not None:
        raise Conflict(f"alias {alias!r} is already used in API root {api_root!r}")
    collection = catalog.add_collection(
        session,
        api_root_id=root.id,
        title=title,
        collection_id=collection_id,
        description=description,
        alias=alias,
        default_tlp=int(_tlp(default_tlp)),
    )
    collection.validation = _policy(validation)
    session.flush()
    return collection_dict(collection)


def update_collection(session: Session, *, key: str, validation: str | None = None) -> dict[str, object]:
    """Change a collection's validation policy (its id or its alias names it); ``None`` leaves it."""
    collection = catalog.resolve_collection(session, key)
    if validation is not None:
        collection.validation = _policy(validation)
        session.flush()
    return collection_dict(collection)


def _policy(text: str) -> str:
    policy = text.strip().lower()
    if policy not in POLICIES:
        raise BadRequest(f"validation must be {' or '.join(POLICIES)}, not {text!r}")
    return policy


def list_collections(session: Session, api_root: str | None = None) -> list[dict[str, object]]:
    root_id = None
    if api_root is not None:
        root = catalog.get_api_root(session, api_root)
        if root is None:
            raise NotFound(f"there is no API root {api_root!r}")
        root_id = root.id
    return [collection_dict(c) for c in catalog.list_collections(session, root_id)]


def _tlp(text: str) -> Tlp:
    try:
        return Tlp.parse(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _principal(session: Session, name: str) -> Principal:
    principal = principals.get_principal(session, name)
    if principal is None:
        raise NotFound(f"there is no principal {name!r}")
    return principal


def create_principal(
    session: Session,
    *,
    name: str,
    kind: str = "partner",
    organisation: str | None = None,
    identity_ref: str | None = None,
    clearance: str = "amber",
    requests_per_minute: int | None = None,
    objects_per_day: int | None = None,
) -> dict[str, object]:
    if kind not in PRINCIPAL_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(PRINCIPAL_KINDS)}")
    if principals.get_principal(session, name) is not None:
        raise Conflict(f"principal {name!r} already exists")
    if identity_ref is None:
        # A stable STIX identity per principal: what its objects carry as created_by_ref.
        identity_ref = f"identity--{uuid.uuid5(uuid.NAMESPACE_URL, 'indicator-exchange:principal:' + name)}"
    principal = principals.add_principal(
        session,
        Principal(
            id=uuid.uuid4(),
            name=name,
            kind=kind,
            organisation=organisation or name,
            identity_ref=identity_ref,
            clearance=int(_tlp(clearance)),
            requests_per_minute=requests_per_minute,
            objects_per_day=objects_per_day,
            is_active=True,
        ),
    )
    return principal_dict(principal)


def list_principals(session: Session) -> list[dict[str, object]]:
    return [principal_dict(p) for p in principals.list_principals(session)]


def get_principal(session: Session, *, name: str) -> dict[str, object]:
    return principal_dict(_principal(session, name))


class Unset(Enum):
    """Marks an argument the caller did not pass (``None`` means "back to the server default")."""

    UNSET = "unset"


UNSET = Unset.UNSET


def update_principal(
    session: Session,
    *,
    name: str,
    clearance: str | None = None,
    organisation: str | None = None,
    requests_per_minute: int | Unset | None = UNSET,
    objects_per_day: int | Unset | None = UNSET,
    is_active: bool | None = None,
) -> dict[str, object]:
    """Change a principal; limits take ``None`` (server default) or a number (0 = unlimited).

    A deactivated principal's keys are refused (401) from the next request on.
    """
    principal = _principal(session, name)
    if clearance is not None:
        principal.clearance = int(_tlp(clearance))
    if organisation is not None:
        principal.organisation = organisation
    for field, value in (("requests_per_minute", requests_per_minute), ("objects_per_day", objects_per_day)):
        if value is UNSET:
            continue
        if value is not None and value < 0:
            raise BadRequest(f"{field} must be 0 (unlimited) or more")
        setattr(principal, field, value)
    if is_active is not None:
        principal.is_active = is_active
    session.flush()
    return principal_dict(principal)


def create_key(session: Session, *, principal: str, expires_at: datetime | None = None) -> dict[str, object]:
    """A new key; the secret is in the answer once and nowhere else (only its hash is stored)."""
    owner = _principal(session, principal)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise BadRequest("expires_at must be in the future")
    key_id, secret = new_key()
    key = principals.add_key(
        session,
        ApiKey(key_id=key_id, principal_id=owner.id, secret_hash=hash_secret(secret), expires_at=expires_at),
    )
    return {**key_dict(key, owner.name), "secret": secret, "bearer": bearer_token(key_id, secret)}


def list_keys(session: Session, *, principal: str | None = None) -> list[dict[str, object]]:
    owner = _principal(session, principal) if principal else None
    names = {p.id: p.name for p in principals.list_principals(session)}
    return [key_dict(k, names.get(k.principal_id)) for k in principals.list_keys(session, owner.id if owner else None)]


def revoke_key(session: Session, *, key_id: str) -> dict[str, object]:
    key = principals.get_key(session, key_id)
    if key is None:
        raise NotFound(f"there is no key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        session.flush()
    return key_dict(key, _principal_name(session, key.principal_id))


def rotate_key(
    session: Session, *, key_id: str, grace_hours: float = 24.0, expires_at: datetime | None = None
) -> dict[str, object]:
    """A new key for the same principal now; the old one keeps working for ``grace_hours``, then expires.

    Answers the new key (with its secret, shown this once) and the old key's new expiry under ``replaces``.
    """
    if grace_hours < 0:
        raise BadRequest("grace_hours must be 0 or more")
    old = principals.get_key(session, key_id)
    if old is None:
        raise NotFound(f"there is no key {key_id!r}")
    now = datetime.now(UTC)
    if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
        raise Conflict(f"key {key_id} is already revoked or expired; create a new key instead")
    owner = principals.get_principal_by_id(session, old.principal_id)
    assert owner is not None
    created = create_key(session, principal=owner.name, expires_at=expires_at)
    grace_end = now + timedelta(hours=grace_hours)
    if old.expires_at is None or old.expires_at > grace_end:
        old.expires_at = grace_end
    session.flush()
    return {**created, "replaces": key_dict(old, owner.name)}


def _principal_name(session: Session, principal_id: uuid.UUID) -> str | None:
    found = principals.get_principal_by_id(session, principal_id)
    return found.name if found else None


def grant(session: Session, *, principal: str, collection_id: uuid.UUID, read: bool, write: bool) -> dict[str, object]:
    owner = _principal(session, principal)
    if catalog.get_collection_by_id(session, collection_id) is None:
        raise NotFound(f"there is no collection {collection_id}")
    if not read and not write:
        raise BadRequest(
            "grant at least one of read or write (use `indicator-exchange admin grant-revoke` to remove a grant)"
        )
    return grant_dict(
        principals.set_grant(session, owner.id, collection_id, can_read=read, can_write=write), owner.name
    )


def revoke_grant(session: Session, *, principal: str, collection_id: uuid.UUID) -> dict[str, object]:
    owner = _principal(session, principal)
    found = principals.get_grant(session, owner.id, collection_id)
    if found is None:
        raise NotFound(f"{principal!r} has no grant on collection {collection_id}")
    result = grant_dict(found, owner.name)
    principals.delete_grant(session, found)
    return result


def list_grants(session: Session, *, principal: str | None = None) -> list[dict[str, object]]:
    owner = _principal(session, principal) if principal else None
    names = {p.id: p.name for p in principals.list_principals(session)}
    return [grant_dict(g, names[g.principal_id]) for g in principals.list_grants(session, owner.id if owner else None)]


def list_audit(
    session: Session,
    *,
    principal: str | None = None,
    collection_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, object]]:
    """Audit events, newest first (``before_id`` pages further back)."""
    return audit.list_events(
        session,
        principal=principal,
        collection_id=collection_id,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )


def deliveries(session: Session, *, object_id: str, principal: str) -> list[dict[str, object]]:
    """Every audited read in which ``principal`` was served a version of ``object_id``."""
    return [d.as_dict() for d in audit.deliveries_of(session, object_id, principal)]
