"""Write rules (issue 3 §4): who may post which objects, and who may delete them.

* A principal posts only objects whose ``created_by_ref`` is its own identity. Unattributed objects (no
  ``created_by_ref``) are accepted as they are and the poster is recorded in the store (``added_by``); they
  are never stamped, because changing a producer's object would break its versioning and any signature.
* Only the owner of an object adds versions to it: the identity in ``created_by_ref`` or, for unattributed
  objects, the identity of the principal that posted them. Re-posting an identical stored version is not a
  new version and stays an idempotent success (SCOs have deterministic ids and are shared by everyone).
* An ``identity`` object whose id is another principal's identity is refused: nobody speaks for another.
* The standard TLP marking-definitions (TLP 2.0 and 1.0 ids) are accepted from anyone: the canonical TLP 2.0
  definitions are stored, any other content under a standard id is acknowledged and not stored (markings are
  enforced by id; a partner cannot redefine them).
* Admins are exempt from the attribution and ownership rules (they can issue keys for any identity anyway)
  but not from clearance: nobody posts above their own clearance.
* Deleting an object takes a write grant and ownership of every stored version, or an admin.
"""

from collections.abc import Mapping

from indicator_exchange.auth.service import Caller
from indicator_exchange.stix.markings import MARKING_TLP, TLP2_MARKING_IDS, tlp2_marking_definitions
from indicator_exchange.stix.objects import ObjectMeta

STANDARD_MARKING_IDS = frozenset(MARKING_TLP)
_CANONICAL_TLP2 = {str(d["id"]): d for d in tlp2_marking_definitions()}
assert set(_CANONICAL_TLP2) == set(TLP2_MARKING_IDS.values())

STORE = "store"
ACKNOWLEDGE = "acknowledge"


def owner_key(caller: Caller) -> str:
    """How ``store.ownership.owners`` names the caller as an owner."""
    return caller.identity_ref or f"principal:{caller.principal_id}"


def write_verdict(
    caller: Caller,
    meta: ObjectMeta,
    obj: Mapping[str, object],
    *,
    stored: Mapping[int, set[str]] | None,
    principal_identities: set[str],
) -> tuple[str, str | None]:
    """``(STORE, None)``, ``(ACKNOWLEDGE, message)`` or ``("refuse", reason)`` for one posted object.

    ``stored`` maps the versions already stored under this id in the collection to their owners.
    """
    if meta.stix_type == "marking-definition" and meta.stix_id in STANDARD_MARKING_IDS:
        if _CANONICAL_TLP2.get(meta.stix_id) == obj:
            return STORE, None
        return ACKNOWLEDGE, "a standard TLP marking-definition: the server's canonical definition applies"
    if caller.is_admin:
        return STORE, None
    if meta.created_by_ref is not None and meta.created_by_ref != caller.identity_ref:
        mine = caller.identity_ref or "none"
        return "refuse", f"created_by_ref {meta.created_by_ref} is not your identity ({mine})"
    if meta.stix_type == "identity" and meta.stix_id != caller.identity_ref and meta.stix_id in principal_identities:
        return "refuse", "this identity belongs to another principal; only it may publish it"
    if stored and meta.version not in stored:
        owners = set().union(*stored.values())
        if owners != {owner_key(caller)}:
            return "refuse", "only the object's creator may add versions to it"
    return STORE, None


def may_delete(caller: Caller, owners: set[str]) -> bool:
    """Admins, or the owner of every stored version."""
    return caller.is_admin or owners <= {owner_key(caller)}
