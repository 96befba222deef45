"""Administration shared by the CLI and the admin HTTP API: API roots, collections, principals, keys, grants.

Every function returns plain dicts (what ``--json`` prints and the admin API answers) and never commits.
"""

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from indicator_exchange.auth.keys import bearer_token, hash_secret, new_key
from indicator_exchange.auth.service import PRINCIPAL_KINDS
from indicator_exchange.errors import BadRequest, Conflict, NotFound
from indicator_exchange.stix.markings import Tlp
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
    if not _ROOT_NAME.match(name) or name.lower() in RESERVED_ROOT_NAMES:
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
    return collection_dict(collection)


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


def create_key(session: Session, *, principal: str, expires_at: datetime | None = None) -> dict[str, object]:
    """A new key; the secret is in the answer once and nowhere else (only its hash is stored)."""
    owner = _principal(session, principal)
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
    return key_dict(key)


def grant(session: Session, *, principal: str, collection_id: uuid.UUID, read: bool, write: bool) -> dict[str, object]:
    owner = _principal(session, principal)
    if catalog.get_collection_by_id(session, collection_id) is None:
        raise NotFound(f"there is no collection {collection_id}")
    if not read and not write:
        raise BadRequest("grant at least one of read or write (use 'grant revoke' to remove a grant)")
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
