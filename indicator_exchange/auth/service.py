"""Who is calling, and what they may do: authentication and per-collection authorisation."""

import hmac
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from indicator_exchange.auth.keys import hash_secret, parse_authorization, secret_matches
from indicator_exchange.errors import ExchangeError, NotPermitted, Unauthorized
from indicator_exchange.store import catalog, principals
from indicator_exchange.store.catalog import CollectionEntry
from indicator_exchange.store.models import Collection
from indicator_exchange.store.objects import Visibility

PRINCIPAL_KINDS = ("partner", "detector", "compliance", "admin")


@dataclass(frozen=True, slots=True)
class Access:
    can_read: bool
    can_write: bool


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated principal, with its grants loaded once per request."""

    principal_id: uuid.UUID
    name: str
    kind: str
    clearance: int
    key_id: str
    identity_ref: str | None
    requests_per_minute: int | None = None
    objects_per_day: int | None = None
    grants: dict[uuid.UUID, Access] = field(default_factory=dict)
    organisation: str | None = None
    key_last_used_at: datetime | None = None
    key_expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def access(self, collection_id: uuid.UUID) -> Access:
        """Admins may read and write every collection; everyone else needs a grant."""
        if self.is_admin:
            return Access(can_read=True, can_write=True)
        return self.grants.get(collection_id, Access(can_read=False, can_write=False))

    def sees(self, collection_id: uuid.UUID) -> bool:
        access = self.access(collection_id)
        return access.can_read or access.can_write


class InvalidKey(Unauthorized):
    """A 401 that also tells the audit trail why (``reason``) and whose key it was; the client sees neither."""

    def __init__(
        self, reason: str, *, principal_id: uuid.UUID | None = None, principal_name: str | None = None
    ) -> None:
        super().__init__("the API key is not valid")
        self.reason = reason
        self.principal_id = principal_id
        self.principal_name = principal_name


def authenticate(session: Session, authorization: str | None, *, now: datetime | None = None) -> Caller:
    """The caller behind an ``Authorization`` header; ``Unauthorized`` for anything not currently valid.

    Every failure reads the same to the client, so a key id cannot be probed; ``InvalidKey.reason`` keeps
    the real cause for the audit trail.
    """
    credentials = parse_authorization(authorization)
    if credentials is None:
        raise Unauthorized("send an API key as HTTP Basic (key id : secret) or 'Bearer <key id>.<secret>'")
    key_id, secret = credentials
    found = principals.key_with_principal(session, key_id)
    now = now or datetime.now(UTC)
    if found is None:
        raise InvalidKey("unknown key id")
    key, principal = found
    reason = None
    if not secret_matches(secret, key.secret_hash):
        reason = "wrong secret"
    elif key.revoked_at is not None:
        reason = "key revoked"
    elif key.expires_at is not None and key.expires_at <= now:
        reason = "key expired"
    elif not principal.is_active:
        reason = "principal inactive"
    if reason is not None:
        raise InvalidKey(reason, principal_id=principal.id, principal_name=principal.name)
    grants = {
        collection_id: Access(can_read=g.can_read, can_write=g.can_write)
        for collection_id, g in catalog.grants_for(session, principal.id).items()
    }
    return Caller(
        principal_id=principal.id,
        name=principal.name,
        kind=principal.kind,
        clearance=principal.clearance,
        key_id=key.key_id,
        identity_ref=principal.identity_ref,
        requests_per_minute=principal.requests_per_minute,
        objects_per_day=principal.objects_per_day,
        grants=grants,
        organisation=principal.organisation,
        key_last_used_at=key.last_used_at,
        key_expires_at=key.expires_at,
    )


class CallerCache:
    """Authenticated callers remembered per worker while nothing they depend on has changed.

    Authentication costs two queries on every request (key and principal, then grants); a feed poller sends
    hundreds of requests a minute with the same key. An entry is used only with the same secret (its SHA-256
    compared in constant time), never past the key's expiry, at most ``max_age_seconds`` after it was read,
    and only while the auth epoch (a counter that database triggers raise on every change to principals,
    grants and keys' validity, whoever makes it) still has the value it had then.
    """

    def __init__(self, max_age_seconds: float, max_entries: int = 10_000) -> None:
        self.max_age = max_age_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[str, Caller, int, float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_age > 0

    def get(self, key_id: str, secret: str, *, now: datetime, epoch: int | None) -> Caller | None:
        if epoch is None:
            return None
        hit = self.get_assuming_epoch(key_id, secret, now=now)
        return hit[0] if hit is not None and hit[1] == epoch else None

    def get_assuming_epoch(self, key_id: str, secret: str, *, now: datetime) -> tuple[Caller, int] | None:
        """``get`` without the epoch check: the entry and the epoch it was read under, which the caller must
        then verify itself (``dependencies.get_provisional_caller``)."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key_id)
        if entry is None:
            return None
        digest, caller, cached_epoch, read_at = entry
        if time.monotonic() - read_at > self.max_age or not hmac.compare_digest(digest, hash_secret(secret)):
            return None
        if caller.key_expires_at is not None and caller.key_expires_at <= now:
            return None
        return caller, cached_epoch

    def put(self, key_id: str, secret: str, caller: Caller, *, epoch: int | None) -> None:
        if not self.enabled or epoch is None:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key_id] = (hash_secret(secret), caller, epoch, time.monotonic())

    def mark_used(self, key_id: str, when: datetime) -> None:
        """The audit trail refreshed the key's ``last_used_at`` (which does not move the epoch)."""
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is not None:
                digest, caller, epoch, read_at = entry
                self._entries[key_id] = (digest, replace(caller, key_last_used_at=when), epoch, read_at)


def visibility_for(caller: Caller, collection: Collection | CollectionEntry) -> Visibility:
    """What ``caller`` may see in ``collection``: its clearance; unmarked objects at the collection default.

    Every read of objects (TAXII, exports, reports) filters with this, in SQL (``store.objects.read_page``).
    """
    return Visibility(clearance=caller.clearance, default_tlp=collection.default_tlp)


def require_read(caller: Caller, collection: Collection | CollectionEntry) -> None:
    if not caller.access(collection.id).can_read:
        raise NotPermitted(f"you have no read grant on collection {collection.id}")


def require_write(caller: Caller, collection: Collection | CollectionEntry) -> None:
    if not caller.access(collection.id).can_write:
        raise NotPermitted(f"you have no write grant on collection {collection.id}")


def require_grant(
    caller: Caller,
    collection: Collection | CollectionEntry,
    *,
    hidden: ExchangeError,
    read: bool = False,
    write: bool = False,
) -> None:
    """TAXII 2.1 §5's permission tables: with no grant at all on ``collection`` the caller gets ``hidden``, the
    error a collection that does not exist gets, so no answer confirms that it exists; a grant that lacks a
    right the operation needs (``read``, ``write``) is 403."""
    if not caller.sees(collection.id):
        raise hidden
    if read:
        require_read(caller, collection)
    if write:
        require_write(caller, collection)


def require_kind(caller: Caller, *kinds: str) -> None:
    if caller.kind not in kinds:
        raise NotPermitted(f"this needs a principal of kind {' or '.join(kinds)}")
