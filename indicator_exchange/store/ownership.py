"""Who owns stored objects: the identity that created them (``created_by_ref``) or, for unattributed ones, the
identity of the principal that posted them (``added_by``). Used by the write and delete rules."""

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from indicator_exchange.store.models import ObjectVersion, Principal


def owners(session: Session, collection_id: uuid.UUID, stix_ids: Iterable[str]) -> dict[str, dict[int, set[str]]]:
    """For each stored id among ``stix_ids``: its stored versions and the owner identity of each.

    An owner is ``created_by_ref``, else the posting principal's ``identity_ref``, else ``principal:<id>``
    (a principal without an identity), else ``unknown`` (loaded outside the API).
    """
    ids = sorted(set(stix_ids))
    result: dict[str, dict[int, set[str]]] = {}
    identity = func.coalesce(ObjectVersion.created_by_ref, Principal.identity_ref)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = (
            select(ObjectVersion.stix_id, ObjectVersion.version, identity, ObjectVersion.added_by)
            .outerjoin(Principal, Principal.id == ObjectVersion.added_by)
            .where(ObjectVersion.collection_id == collection_id, ObjectVersion.stix_id.in_(chunk))
        )
        for stix_id, version, owner, added_by in session.execute(query):
            if owner is None:
                owner = f"principal:{added_by}" if added_by is not None else "unknown"
            result.setdefault(stix_id, {}).setdefault(int(version), set()).add(str(owner))
    return result


def principal_identities(session: Session) -> set[str]:
    """The STIX identities that principals hold (an identity object with such an id speaks for a principal)."""
    rows = session.execute(select(Principal.identity_ref).where(Principal.identity_ref.is_not(None)).distinct())
    return {str(identity) for (identity,) in rows}
