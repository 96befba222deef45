"""Request and response bodies of the admin HTTP API (``/api/v1/admin/``)."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from indicator_exchange.fields import Count32, Description, Flag, Hours, Name, Timestamp, Title

TlpLabel = Literal["clear", "green", "amber", "amber+strict", "red"]
PrincipalKind = Literal["partner", "detector", "compliance", "admin"]
ValidationPolicy = Literal["strict", "basic"]
_VALIDATION = (
    "How incoming STIX is checked: strict (STIX 2.1 validation, patterns parsed; invalid objects are refused) or "
    "basic (the common properties only; objects stored as received). See docs/validation.md."
)
IDENTITY_PATTERN = r"^identity--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiRootCreate(_Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        strict=True,
        description="URL segment of the API root (letters, digits, _.-; at most 64; not a reserved name).",
        examples=["lab-feeds"],
    )
    title: Title
    description: Description | None = None


class ApiRootRead(BaseModel):
    id: uuid.UUID
    name: str
    title: str
    description: str | None


class CollectionCreate(_Strict):
    api_root: Name = Field(description="Name of the API root the collection belongs to.")
    title: Title
    id: uuid.UUID | None = Field(None, description="Collection id (default: a random UUID).")
    description: Description | None = None
    alias: Name | None = Field(None, description="URL alias usable in place of the id.")
    default_tlp: TlpLabel = Field("amber", description="TLP of objects that carry no TLP marking.")
    validation: ValidationPolicy = Field("strict", description=_VALIDATION)


class CollectionUpdate(_Strict):
    """Only the fields sent change."""

    validation: ValidationPolicy | None = Field(None, description=_VALIDATION)


class CollectionRead(BaseModel):
    id: uuid.UUID
    api_root_id: uuid.UUID
    title: str
    description: str | None
    alias: str | None
    default_tlp: TlpLabel
    validation: ValidationPolicy = Field(description=_VALIDATION)


class PrincipalCreate(_Strict):
    name: Name
    kind: PrincipalKind = "partner"
    organisation: Title | None = None
    identity_ref: str | None = Field(
        None, pattern=IDENTITY_PATTERN, description="STIX identity (default: derived from the name)."
    )
    clearance: TlpLabel = "amber"
    requests_per_minute: Count32 | None = Field(None, description="Per key; null = server default, 0 = unlimited.")
    objects_per_day: Count32 | None = Field(None, description="Per key; null = server default, 0 = unlimited.")


class PrincipalUpdate(_Strict):
    """Only the fields sent change; send ``null`` for a limit to return it to the server default."""

    organisation: Title | None = None
    clearance: TlpLabel | None = None
    requests_per_minute: Count32 | None = None
    objects_per_day: Count32 | None = None
    is_active: Flag | None = Field(None, description="false refuses the principal's keys from the next request.")


class PrincipalRead(BaseModel):
    id: uuid.UUID
    name: str
    kind: PrincipalKind
    organisation: str | None
    identity_ref: str | None
    clearance: TlpLabel
    requests_per_minute: int | None
    objects_per_day: int | None
    is_active: bool


class KeyCreate(_Strict):
    principal: Name
    expires_at: Timestamp | None = Field(None, description="When the key stops working (default: never).")


class KeyRotate(_Strict):
    grace_hours: Hours = Field(24.0, description="How long the old key keeps working (at most ten years).")
    expires_at: Timestamp | None = Field(None, description="Expiry of the new key (default: never).")


class KeyRead(BaseModel):
    """A key as listed: never its secret."""

    key_id: str
    principal: str | None
    created_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(KeyRead):
    """A new key: the secret is in this answer once and stored nowhere (only its SHA-256)."""

    secret: str
    bearer: str = Field(description="`Authorization: Bearer` token: `<key id>.<secret>`.")


class KeyRotated(KeyCreated):
    replaces: KeyRead = Field(description="The old key, with the expiry that ends its grace period.")


class GrantWrite(_Strict):
    principal: Name
    collection_id: uuid.UUID
    read: Flag = False
    write: Flag = False


class GrantRead(BaseModel):
    principal: str
    collection_id: uuid.UUID
    read: bool
    write: bool


class AuditEventRead(BaseModel):
    id: int
    at: datetime
    principal_id: uuid.UUID | None
    principal_name: str | None
    key_id: str | None
    client_addr: str | None
    method: str
    path: str
    route: str | None
    api_root: str | None
    collection_id: uuid.UUID | None
    object_id: str | None
    filters: dict[str, list[str]] | None = Field(description="Query parameters (unknown ones by name only).")
    status_code: int
    outcome: str = Field(description="ok, denied, not-found, rate-limited, rejected or error.")
    object_count: int | None
    date_added_first: str | None = Field(description="date_added of the first object served.")
    date_added_last: str | None = Field(description="date_added of the last object served.")
    detail: str | None


class AuditPage(BaseModel):
    events: list[AuditEventRead]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null at the end.")


class DeliveryRead(BaseModel):
    event_id: int = Field(description="The audit event of the read.")
    at: datetime
    principal_id: uuid.UUID
    key_id: str | None
    collection_id: uuid.UUID
    kind: Literal["objects", "manifest", "versions"] = Field(
        description="objects: the object itself was served; manifest/versions: only its metadata."
    )
    version: str | None
    date_added: str
