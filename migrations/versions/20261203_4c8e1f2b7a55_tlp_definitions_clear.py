"""TLP marking-definitions filed under TLP:CLEAR

Revision ID: 4c8e1f2b7a55
Revises: 9d4f2a7c1e38
Create Date: 2026-12-03 10:40:00

The standard TLP marking-definitions carry no marking of their own, so they were stored with ``tlp`` NULL and
took their collection's default TLP: a TLP:GREEN reader of a collection whose default is AMBER received objects
marked TLP:GREEN but never the definition of TLP:GREEN. The store now files them under TLP:CLEAR
(``stix.markings.filed_tlp``); this revision re-files the rows already stored. Only the indexed column moves:
the stored JSON is the OASIS definition, unchanged. The publisher identity and extension definitions are not
re-marked here (their content is the code's and the settings'): ingestion writes their TLP:CLEAR version on
the next publish into each collection.

Downgrade puts the definitions back under NULL (the collection's default), as they were stored before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4c8e1f2b7a55"
down_revision: str | None = "9d4f2a7c1e38"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# TLP 2.0 and TLP 1.0 ids (stix.markings), written out: a revision must not change when the code does.
_TLP_IDS = (
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
)
_CLEAR = 0

_object_version = sa.table(
    "object_version",
    sa.column("stix_type", sa.String),
    sa.column("stix_id", sa.String),
    sa.column("tlp", sa.SmallInteger),
)
_definitions = sa.and_(_object_version.c.stix_type == "marking-definition", _object_version.c.stix_id.in_(_TLP_IDS))


def upgrade() -> None:
    op.execute(_object_version.update().where(_definitions, _object_version.c.tlp.is_(None)).values(tlp=_CLEAR))


def downgrade() -> None:
    op.execute(_object_version.update().where(_definitions, _object_version.c.tlp == _CLEAR).values(tlp=None))
