"""The ``admin`` group: API roots, collections, principals, grants and API keys."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from indicator_exchange.cli.common import (
    JsonOpt,
    print_result,
    resolve_collection_id,
    run_in_session,
)

if TYPE_CHECKING:
    from indicator_exchange.admin.service import Unset

admin_app = typer.Typer(help="Manage API roots, collections, principals, grants and keys.", no_args_is_help=True)
root_app = typer.Typer(help="TAXII API roots.", no_args_is_help=True)
collection_app = typer.Typer(help="TAXII collections.", no_args_is_help=True)
principal_app = typer.Typer(help="Principals: partners, detectors, compliance, admins.", no_args_is_help=True)
key_app = typer.Typer(help="API keys (the secret is shown once, at creation).", no_args_is_help=True)


@root_app.command("create")
def api_root_create(
    name: Annotated[str, typer.Argument(help="URL segment of the API root, e.g. 'lab-feeds'.")],
    title: Annotated[str, typer.Option(help="Human title.")],
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API root, served at /NAME/."""
    from indicator_exchange.admin import service as admin

    print_result(
        run_in_session(
            lambda s: admin.create_api_root(s, name=name, title=title, description=description),
            audit="api-root create",
        ),
        as_json,
    )


@root_app.command("list")
def api_root_list(as_json: JsonOpt = False) -> None:
    """List API roots."""
    from indicator_exchange.admin import service as admin

    print_result(run_in_session(admin.list_api_roots), as_json)


VALIDATION_HELP = (
    "strict (STIX 2.1 validation: invalid objects are refused) | basic (common properties only; stored as received)."
)


@collection_app.command("create")
def collection_create(
    api_root: Annotated[str, typer.Option(help="API root name.")],
    title: Annotated[str, typer.Option(help="Human title.")],
    id: Annotated[uuid.UUID | None, typer.Option(help="Collection id (default: random UUID).")] = None,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    alias: Annotated[str | None, typer.Option(help="URL alias, usable in place of the id.")] = None,
    default_tlp: Annotated[
        str, typer.Option(help="TLP for unmarked objects: clear|green|amber|amber+strict|red.")
    ] = "amber",
    validation: Annotated[str, typer.Option(help=VALIDATION_HELP)] = "strict",
    as_json: JsonOpt = False,
) -> None:
    """Create a collection in an API root."""
    from indicator_exchange.admin import service as admin

    print_result(
        run_in_session(
            lambda s: admin.create_collection(
                s,
                api_root=api_root,
                title=title,
                collection_id=id,
                description=description,
                alias=alias,
                default_tlp=default_tlp,
                validation=validation,
            ),
            audit="collection create",
        ),
        as_json,
    )


@collection_app.command("update")
def collection_update(
    collection: Annotated[str, typer.Argument(help="Collection id or alias.")],
    validation: Annotated[str | None, typer.Option(help=VALIDATION_HELP)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a collection's validation policy."""
    from indicator_exchange.admin import service as admin

    print_result(
        run_in_session(
            lambda s: admin.update_collection(s, key=collection, validation=validation), audit="collection update"
        ),
        as_json,
    )


@collection_app.command("list")
def collection_list(
    api_root: Annotated[str | None, typer.Option(help="Only this API root.")] = None, as_json: JsonOpt = False
) -> None:
    """List collections."""
    from indicator_exchange.admin import service as admin

    print_result(run_in_session(lambda s: admin.list_collections(s, api_root)), as_json)


@principal_app.command("create")
def principal_create(
    name: Annotated[str, typer.Argument(help="Unique principal name.")],
    kind: Annotated[str, typer.Option(help="partner | detector | compliance | admin.")] = "partner",
    organisation: Annotated[str | None, typer.Option(help="Organisation name.")] = None,
    identity: Annotated[str | None, typer.Option(help="STIX identity id (default: derived from the name).")] = None,
    clearance: Annotated[str, typer.Option(help="TLP clearance: clear|green|amber|amber+strict|red.")] = "amber",
    requests_per_minute: Annotated[int | None, typer.Option(help="Rate limit per key (default: server's).")] = None,
    objects_per_day: Annotated[int | None, typer.Option(help="Daily object quota per key (default: server's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a principal."""
    from indicator_exchange.admin import service as admin

    print_result(
        run_in_session(
            lambda s: admin.create_principal(
                s,
                name=name,
                kind=kind,
                organisation=organisation,
                identity_ref=identity,
                clearance=clearance,
                requests_per_minute=requests_per_minute,
                objects_per_day=objects_per_day,
            ),
            audit="principal create",
        ),
        as_json,
    )


@principal_app.command("list")
def principal_list(as_json: JsonOpt = False) -> None:
    """List principals."""
    from indicator_exchange.admin import service as admin

    print_result(run_in_session(admin.list_principals), as_json)


@admin_app.command("grant")
def grant_create(
    principal: Annotated[str, typer.Argument(help="Principal name.")],
    collection: Annotated[str, typer.Argument(help="Collection id or alias.")],
    read: Annotated[bool, typer.Option("--read", help="Allow reading.")] = False,
    write: Annotated[bool, typer.Option("--write", help="Allow writing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Grant (or change) a principal's read/write access to a collection."""
    from indicator_exchange.admin import service as admin

    print_result(
        run_in_session(
            lambda s: admin.grant(
                s, principal=principal, collection_id=resolve_collection_id(s, collection), read=read, write=write
            ),
            audit="grant",
        ),
        as_json,
    )


@admin_app.command("grant-list")
def grant_list(
    principal: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List grants."""
    from indicator_exchange.admin import service as admin

    print_result(run_in_session(lambda s: admin.list_grants(s, principal=principal)), as_json)


@admin_app.command("grant-revoke")
def grant_revoke(
    principal: Annotated[str, typer.Argument(help="Principal name.")],
    collection: Annotated[str, typer.Argument(help="Collection id or alias.")],
    as_json: JsonOpt = False,
) -> None:
    """Remove a principal's grant on a collection."""
    from indicator_exchange.admin import service as admin

    print_result(
        run_in_session(
            lambda s: admin.revoke_grant(s, principal=principal, collection_id=resolve_collection_id(s, collection)),
            audit="grant-revoke",
        ),
        as_json,
    )


@key_app.command("create")
def key_create(
    principal: Annotated[str, typer.Argument(help="Principal name.")],
    expires_in_days: Annotated[int | None, typer.Option(help="Expire the key after N days.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key and print its id and secret (shown this once only)."""
    from indicator_exchange.admin import service as admin

    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    print_result(
        run_in_session(lambda s: admin.create_key(s, principal=principal, expires_at=expires), audit="key create"),
        as_json,
    )


@key_app.command("list")
def key_list(
    principal: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List keys (never their secrets)."""
    from indicator_exchange.admin import service as admin

    print_result(run_in_session(lambda s: admin.list_keys(s, principal=principal)), as_json)


@key_app.command("revoke")
def key_revoke(key_id: Annotated[str, typer.Argument(help="Key id.")], as_json: JsonOpt = False) -> None:
    """Revoke a key; it is refused (401) from the next request on."""
    from indicator_exchange.admin import service as admin

    print_result(run_in_session(lambda s: admin.revoke_key(s, key_id=key_id), audit="key revoke"), as_json)


@key_app.command("rotate")
def key_rotate(
    key_id: Annotated[str, typer.Argument(help="Key id to replace.")],
    grace_hours: Annotated[float, typer.Option(help="Hours the old key keeps working.")] = 24.0,
    expires_in_days: Annotated[int | None, typer.Option(help="Expire the new key after N days.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new key for the same principal now; the old key expires after the grace period."""
    from indicator_exchange.admin import service as admin

    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    print_result(
        run_in_session(
            lambda s: admin.rotate_key(s, key_id=key_id, grace_hours=grace_hours, expires_at=expires),
            audit="key rotate",
        ),
        as_json,
    )


@principal_app.command("update")
def principal_update(
    name: Annotated[str, typer.Argument(help="Principal name.")],
    clearance: Annotated[str | None, typer.Option(help="TLP clearance: clear|green|amber|amber+strict|red.")] = None,
    organisation: Annotated[str | None, typer.Option(help="Organisation name.")] = None,
    requests_per_minute: Annotated[str | None, typer.Option(help="N (0 = unlimited) or 'default'.")] = None,
    objects_per_day: Annotated[str | None, typer.Option(help="N (0 = unlimited) or 'default'.")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Inactive principals get 401.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a principal's clearance, organisation, limits or activation."""
    from indicator_exchange.admin import service as admin

    rpm, per_day = _limit_option(requests_per_minute), _limit_option(objects_per_day)
    print_result(
        run_in_session(
            lambda s: admin.update_principal(
                s,
                name=name,
                clearance=clearance,
                organisation=organisation,
                requests_per_minute=rpm,
                objects_per_day=per_day,
                is_active=active,
            ),
            audit="principal update",
        ),
        as_json,
    )


def _limit_option(text: str | None) -> "int | Unset | None":
    from indicator_exchange.admin import service as admin

    if text is None:
        return admin.UNSET
    if text.strip().lower() == "default":
        return None
    if not (text.strip().isascii() and text.strip().isdigit()):
        raise typer.BadParameter(f"{text!r} is not a number of 0 or more, nor 'default'")
    return int(text)
