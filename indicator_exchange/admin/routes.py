"""The admin HTTP API (``/api/v1/admin/``): what the ``indicator-exchange admin`` CLI does, for automation.

Admin principals only (403 otherwise). Errors are ``{"error", "detail"}``. Every request is in the audit
trail; changes also record a one-line account of what changed (never a secret).
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from indicator_exchange.admin import schemas
from indicator_exchange.admin import service as admin
from indicator_exchange.audit.context import note_detail
from indicator_exchange.dependencies import SessionDep, get_admin
from indicator_exchange.fields import INT64_MAX, Name, NulFree, Timestamp
from indicator_exchange.openapi import json_responses

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(get_admin)],
    responses=json_responses(403, 404, 409),
)

Dict = dict[str, object]
PrincipalName = Annotated[Name, Path(description="Principal name.")]
KeyId = Annotated[Name, Path(description="API key id.")]


@router.get("/api-roots", response_model=list[schemas.ApiRootRead], summary="List API roots")
def list_api_roots(session: SessionDep) -> list[Dict]:
    """Every TAXII API root."""
    return admin.list_api_roots(session)


@router.post("/api-roots", response_model=schemas.ApiRootRead, status_code=201, summary="Create an API root")
def create_api_root(request: Request, body: schemas.ApiRootCreate, session: SessionDep) -> Dict:
    """Create an API root, served at `/{name}/`."""
    note_detail(request, f"create api root {body.name}")
    return admin.create_api_root(session, name=body.name, title=body.title, description=body.description)


@router.get("/collections", response_model=list[schemas.CollectionRead], summary="List collections")
def list_collections(
    session: SessionDep, api_root: Annotated[Name | None, Query(description="Only this API root.")] = None
) -> list[Dict]:
    """Every collection, or those of one API root."""
    return admin.list_collections(session, api_root)


@router.post("/collections", response_model=schemas.CollectionRead, status_code=201, summary="Create a collection")
def create_collection(request: Request, body: schemas.CollectionCreate, session: SessionDep) -> Dict:
    """Create a collection in an API root, with the TLP its unmarked objects take."""
    created = admin.create_collection(
        session,
        api_root=body.api_root,
        title=body.title,
        collection_id=body.id,
        description=body.description,
        alias=body.alias,
        default_tlp=body.default_tlp,
        validation=body.validation,
    )
    note_detail(
        request,
        f"create collection {created['id']} in {body.api_root} (default TLP {body.default_tlp}, "
        f"validation {body.validation})",
    )
    return created


@router.patch("/collections/{collection}", response_model=schemas.CollectionRead, summary="Change a collection")
def update_collection(
    request: Request,
    collection: Annotated[Name, Path(description="Collection id or alias.")],
    body: schemas.CollectionUpdate,
    session: SessionDep,
) -> Dict:
    """Change a collection's validation policy (the collection by id or alias); only the fields sent change."""
    note_detail(request, f"update collection {collection}: validation {body.validation}")
    return admin.update_collection(session, key=collection, validation=body.validation)


@router.get("/principals", response_model=list[schemas.PrincipalRead], summary="List principals")
def list_principals(session: SessionDep) -> list[Dict]:
    """Every principal with its clearance and limits."""
    return admin.list_principals(session)


@router.post("/principals", response_model=schemas.PrincipalRead, status_code=201, summary="Create a principal")
def create_principal(request: Request, body: schemas.PrincipalCreate, session: SessionDep) -> Dict:
    """Create a partner, detector, compliance or admin principal."""
    note_detail(request, f"create principal {body.name} ({body.kind}, clearance {body.clearance})")
    return admin.create_principal(
        session,
        name=body.name,
        kind=body.kind,
        organisation=body.organisation,
        identity_ref=body.identity_ref,
        clearance=body.clearance,
        requests_per_minute=body.requests_per_minute,
        objects_per_day=body.objects_per_day,
    )


@router.get("/principals/{name}", response_model=schemas.PrincipalRead, summary="One principal")
def get_principal(name: PrincipalName, session: SessionDep) -> Dict:
    """One principal by name."""
    return admin.get_principal(session, name=name)


@router.patch("/principals/{name}", response_model=schemas.PrincipalRead, summary="Change a principal")
def update_principal(request: Request, name: PrincipalName, body: schemas.PrincipalUpdate, session: SessionDep) -> Dict:
    """Change clearance, organisation, limits or activation; only the fields sent change."""
    sent = body.model_fields_set
    changes = {field: getattr(body, field) for field in sorted(sent)}
    note_detail(request, f"update principal {name}: {changes}")
    return admin.update_principal(
        session,
        name=name,
        clearance=body.clearance,
        organisation=body.organisation,
        requests_per_minute=body.requests_per_minute if "requests_per_minute" in sent else admin.UNSET,
        objects_per_day=body.objects_per_day if "objects_per_day" in sent else admin.UNSET,
        is_active=body.is_active,
    )


@router.get("/keys", response_model=list[schemas.KeyRead], summary="List API keys")
def list_keys(
    session: SessionDep, principal: Annotated[Name | None, Query(description="Only this principal.")] = None
) -> list[Dict]:
    """Keys with their expiry, revocation and last use; never their secrets."""
    return admin.list_keys(session, principal=principal)


@router.post("/keys", response_model=schemas.KeyCreated, status_code=201, summary="Create an API key")
def create_key(request: Request, body: schemas.KeyCreate, session: SessionDep) -> Dict:
    """Create a key; the answer holds the secret, once (only its hash is stored)."""
    created = admin.create_key(session, principal=body.principal, expires_at=body.expires_at)
    note_detail(request, f"create key {created['key_id']} for {body.principal}")
    return created


@router.post("/keys/{key_id}/revoke", response_model=schemas.KeyRead, summary="Revoke an API key")
def revoke_key(request: Request, key_id: KeyId, session: SessionDep) -> Dict:
    """Revoke a key: refused (401) from the next request on."""
    note_detail(request, f"revoke key {key_id}")
    return admin.revoke_key(session, key_id=key_id)


@router.post("/keys/{key_id}/rotate", response_model=schemas.KeyRotated, status_code=201, summary="Rotate a key")
def rotate_key(request: Request, key_id: KeyId, body: schemas.KeyRotate, session: SessionDep) -> Dict:
    """A new key now; the old one keeps working for the grace period, then expires."""
    rotated = admin.rotate_key(session, key_id=key_id, grace_hours=body.grace_hours, expires_at=body.expires_at)
    note_detail(request, f"rotate key {key_id} -> {rotated['key_id']} (grace {body.grace_hours} h)")
    return rotated


@router.get("/grants", response_model=list[schemas.GrantRead], summary="List grants")
def list_grants(
    session: SessionDep, principal: Annotated[Name | None, Query(description="Only this principal.")] = None
) -> list[Dict]:
    """Who may read or write which collection."""
    return admin.list_grants(session, principal=principal)


@router.put("/grants", response_model=schemas.GrantRead, summary="Set a grant")
def set_grant(request: Request, body: schemas.GrantWrite, session: SessionDep) -> Dict:
    """Grant (or change) a principal's read/write access to a collection."""
    note_detail(request, f"grant {body.principal} on {body.collection_id}: read={body.read} write={body.write}")
    return admin.grant(
        session, principal=body.principal, collection_id=body.collection_id, read=body.read, write=body.write
    )


@router.delete("/grants/{principal}/{collection_id}", response_model=schemas.GrantRead, summary="Remove a grant")
def revoke_grant(request: Request, principal: PrincipalName, collection_id: uuid.UUID, session: SessionDep) -> Dict:
    """Remove a principal's grant on a collection."""
    note_detail(request, f"remove grant of {principal} on {collection_id}")
    return admin.revoke_grant(session, principal=principal, collection_id=collection_id)


@router.get("/audit", response_model=schemas.AuditPage, summary="Audit trail")
def list_audit(
    session: SessionDep,
    principal: Annotated[Name | None, Query(description="Principal name or id.")] = None,
    collection_id: Annotated[uuid.UUID | None, Query(description="Only this collection.")] = None,
    since: Annotated[Timestamp | None, Query(description="Events at or after this time (RFC 3339).")] = None,
    until: Annotated[Timestamp | None, Query(description="Events before this time (RFC 3339).")] = None,
    before: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="Events with an id below this (paging).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
) -> Dict:
    """Audit events, newest first: who, when, what, how much, outcome."""
    events = admin.list_audit(
        session,
        principal=principal,
        collection_id=collection_id,
        since=since,
        until=until,
        before_id=before,
        limit=limit,
    )
    next_before = events[-1]["id"] if len(events) == limit else None
    return {"events": events, "next_before": next_before}


@router.get("/audit/deliveries", response_model=list[schemas.DeliveryRead], summary="Who received an object")
def deliveries(
    session: SessionDep,
    object_id: Annotated[NulFree, Query(max_length=256, description="STIX id of the object.")],
    principal: Annotated[Name, Query(description="Principal name or id.")],
) -> list[Dict]:
    """Every audited read in which the principal was served a version of the object, and when."""
    return admin.deliveries(session, object_id=object_id, principal=principal)
