"""The TAXII 2.1 resources as pydantic models, for the OpenAPI document only.

The routes build these bodies as bytes (a page is streamed from the store without a model in between), so
nothing here runs per request; the models say what those bytes are, and a test checks real answers against
them (``tests/api/test_openapi.py``). Extra properties are allowed, as TAXII 2.1 §1.6.4 lets a server add
custom ones. Optional lists are omitted, never empty (TAXII 2.1 §2: empty lists are prohibited).
"""

from typing import Any, Literal

from pydantic import BaseModel, Field


class Discovery(BaseModel):
    """TAXII 2.1 §4.1.1 discovery resource."""

    title: str
    description: str | None = None
    contact: str | None = None
    default: str | None = Field(None, description="URL of the default API root.")
    api_roots: list[str] | None = Field(None, description="URLs of the API roots this caller may use.")


class ApiRootResource(BaseModel):
    """TAXII 2.1 §4.2.1 api-root resource."""

    title: str
    description: str | None = None
    versions: list[str] = Field(description="Always `application/taxii+json;version=2.1`.")
    max_content_length: int = Field(description="The largest body this server accepts, in bytes.")


class StatusDetail(BaseModel):
    """TAXII 2.1 §4.3.1 status-details: one object of a POST."""

    id: str
    version: str
    message: str | None = None


class StatusResource(BaseModel):
    """TAXII 2.1 §4.3.1 status resource."""

    id: str
    status: Literal["complete", "pending"]
    request_timestamp: str | None = None
    total_count: int
    success_count: int
    successes: list[StatusDetail] | None = None
    failure_count: int
    failures: list[StatusDetail] | None = None
    pending_count: int
    pendings: list[StatusDetail] | None = None


class CollectionResource(BaseModel):
    """TAXII 2.1 §5.2.1 collection resource."""

    id: str
    title: str
    description: str | None = None
    alias: str | None = None
    can_read: bool
    can_write: bool
    media_types: list[str] | None = None


class Collections(BaseModel):
    """TAXII 2.1 §5.1.1 collections resource (no ``collections`` member when the caller sees none)."""

    collections: list[CollectionResource] | None = None


class ManifestRecord(BaseModel):
    """TAXII 2.1 §5.3.1 manifest-record."""

    id: str
    date_added: str
    version: str
    media_type: str | None = None


class Manifest(BaseModel):
    """TAXII 2.1 §5.3.1 manifest resource."""

    more: bool | None = None
    next: str | None = Field(None, description="Pass as `next` for the following page.")
    objects: list[ManifestRecord] | None = None


class Envelope(BaseModel):
    """TAXII 2.1 §3.7 envelope: a page of STIX objects."""

    more: bool | None = None
    next: str | None = Field(None, description="Pass as `next` for the following page.")
    objects: list[dict[str, object]] | None = Field(None, description="STIX 2.1 objects, as stored.")


class Versions(BaseModel):
    """TAXII 2.1 §5.8.1 versions resource."""

    more: bool | None = None
    next: str | None = None
    versions: list[str] | None = None


class EnvelopeIn(BaseModel):
    """The body of TAXII 2.1 §5.5 Add Objects: an envelope of STIX objects."""

    objects: list[Any] = Field(
        description="STIX 2.1 objects. Each is stored or refused on its own: an entry that is not a valid object "
        "(not even a JSON object) is a failure in the status resource, and the rest are stored."
    )


class TaxiiError(BaseModel):
    """TAXII 2.1 §3.6.1 error message: every error on a TAXII path, in the TAXII media type."""

    title: str
    description: str | None = None
    error_id: str | None = None
    error_code: str | None = None
    http_status: str | None = None
    external_details: str | None = None
    details: dict[str, object] | None = None
