"""The caller a background job writes as: the service's own identity, never an admin.

A job (matching's sightings today) publishes objects whose ``created_by_ref`` is the service identity, on a
grant someone else holds. Forging an admin for that would skip every write rule; a ``ServiceCaller`` instead
passes the ordinary ones (``auth.policy``): it is not an admin, it owns what carries the service identity,
and it may write only the collections it was given — those its requester may write.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from indicator_exchange.auth.service import Access, Caller
from indicator_exchange.stix.markings import Tlp

SERVICE_KIND = "service"


@dataclass(frozen=True, slots=True)
class ServiceCaller(Caller):
    """A named background job acting for ``on_behalf_of`` (whose grant it writes on, and whose id it records)."""

    job: str = ""
    on_behalf_of: str = ""

    @property
    def audit_text(self) -> str:
        """How the audit trail names it: job, identity and the principal it acted for."""
        return f"service caller {self.job} (identity {self.identity_ref}) for {self.on_behalf_of}"


def service_caller(
    *, job: str, identity_ref: str, on_behalf_of: Caller, writable: Iterable[uuid.UUID]
) -> ServiceCaller:
    """A service caller that may write exactly ``writable`` (each must be writable by ``on_behalf_of``).

    Clearance is RED: the job writes what it derived from objects the requester could read, marked as those
    were (an indicator filed under its collection's default is sighted as AMBER, above a GREEN requester).
    """
    allowed = list(writable)
    if not all(on_behalf_of.access(c).can_write for c in allowed):
        raise ValueError("a service caller may write only where its requester may")
    return ServiceCaller(
        principal_id=on_behalf_of.principal_id,
        name=f"service:{job}",
        kind=SERVICE_KIND,
        clearance=int(Tlp.RED),
        key_id=on_behalf_of.key_id,
        identity_ref=identity_ref,
        grants={c: Access(can_read=False, can_write=True) for c in allowed},
        organisation=on_behalf_of.organisation,
        job=job,
        on_behalf_of=on_behalf_of.name,
    )
