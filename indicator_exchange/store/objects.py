"""Object versions in collections, by responsibility: ``store.writes`` (the write path and its per-collection
clock), ``store.pages`` (portable keyset reads), ``store.pages_pg`` (the poll's one-statement read on
PostgreSQL), ``store.read_filter`` (the filters of a read, defined once). This module gathers them for callers
that take them as one ``store`` namespace."""

from indicator_exchange.store.pages import (
    CheckedPage,
    JoinedPage,
    ObjectRow,
    count_objects,
    filtered,
    object_exists,
    read_page,
)
from indicator_exchange.store.pages_pg import (
    clock_and_epoch_async,
    clock_and_epoch_pg,
    read_page_joined,
    read_page_pg,
)
from indicator_exchange.store.read_filter import ReadFilter, Visibility
from indicator_exchange.store.writes import (
    NewVersion,
    WriteOutcome,
    delete_versions,
    lock_collection,
    version_of,
    write_versions,
)

_filtered = filtered  # the name store.reports imports

__all__ = [
    "CheckedPage",
    "JoinedPage",
    "NewVersion",
    "ObjectRow",
    "ReadFilter",
    "Visibility",
    "WriteOutcome",
    "clock_and_epoch_async",
    "clock_and_epoch_pg",
    "count_objects",
    "delete_versions",
    "filtered",
    "lock_collection",
    "object_exists",
    "read_page",
    "read_page_joined",
    "read_page_pg",
    "version_of",
    "write_versions",
]
