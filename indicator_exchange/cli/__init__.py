"""The ``indicator-exchange`` command: one module per command group, assembled here in the order of ``--help``.

``app`` (the Typer application, exercised by the tests) and ``main`` (the console-script entry point) are the
public API of this package.
"""

import os
import sys

import typer

from indicator_exchange.cli.admin import (
    admin_app,
    collection_app,
    key_app,
    principal_app,
    root_app,
)
from indicator_exchange.cli.audit import audit_app
from indicator_exchange.cli.db import db_app
from indicator_exchange.cli.demo import demo
from indicator_exchange.cli.lifecycle import lifecycle_app
from indicator_exchange.cli.match import match
from indicator_exchange.cli.push import fingerprint, push
from indicator_exchange.cli.serve import serve
from indicator_exchange.cli.sync import source_app, sync
from indicator_exchange.detect.cli import detect_command
from indicator_exchange.reports.cli import export_command, report_command

__all__ = ["app", "main"]

app = typer.Typer(
    help="indicator-exchange: share STIX 2.1 threat indicators over TAXII 2.1.\n\n"
    "Configuration comes from IX_* environment variables (see the README). IX_DATABASE_URL selects the store; "
    "without it, ./indicator-exchange.db in the working directory (`indicator-exchange db current` shows which).\n\n"
    "Every command has --help: indicator-exchange COMMAND --help.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(serve)
app.command()(sync)
app.command("report")(report_command)
app.command("export")(export_command)
app.command()(push)
app.command()(fingerprint)
app.command("detect")(detect_command)
app.command()(match)
app.command()(demo)
app.add_typer(db_app, name="db")
app.add_typer(lifecycle_app, name="lifecycle")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(root_app, name="api-root")
admin_app.add_typer(collection_app, name="collection")
admin_app.add_typer(principal_app, name="principal")
admin_app.add_typer(key_app, name="key")
admin_app.add_typer(audit_app, name="audit")
admin_app.add_typer(source_app, name="source")


def main() -> None:
    # Keep third-party logging quiet by default; the server configures its own logging.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
