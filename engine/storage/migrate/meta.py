"""What a migration records in ``ff_meta``, its constants, and the blueprint/schema digests."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from engine.model import Blueprint
from engine.storage.schema import (
    Schema,
)

MIGRATION_LOCK_KEY = int.from_bytes(b"Formflow", "big")

META_DIGEST = "blueprint_digest"
META_SCHEMA = "schema_digest"
META_VERSION = "schema_version"
META_MIGRATED_AT = "migrated_at"
META_LAST = "last_migration"
META_NAMES = "schema_names"

ENTITY_PREFIX = "e_"
SYSTEM_PREFIX = "ff_"
BACKUP_PREFIX = "ff_backup_"

#: Names SQLite batch mode gives constraints that were created without a name.
BATCH_NAMING = {
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}
_MAX_IDENTIFIER = 63
_BIGINT_DIGITS = 19
_BIG_MAX = 2**63 - 1


def blueprint_digest(blueprint: Blueprint) -> str:
    """The blueprint's digest (the loader's); for a hand-built model, one of its repr."""
    if blueprint.digest:
        return blueprint.digest
    return "repr-" + hashlib.sha256(repr(blueprint).encode("utf-8")).hexdigest()


def schema_digest(schema: Schema, dialect: Dialect) -> str:
    """A digest of the DDL of every table and index, as ``dialect`` writes it."""
    prep = dialect.identifier_preparer
    digest = hashlib.sha256()
    for table in sorted(schema.metadata.tables.values(), key=lambda t: t.name):
        digest.update(str(sa.schema.CreateTable(table).compile(dialect=dialect)).encode())
        for index in sorted(table.indexes, key=lambda i: _index_name(i, prep)):
            digest.update(str(sa.schema.CreateIndex(index).compile(dialect=dialect)).encode())
    return digest.hexdigest()


def _index_name(index: sa.Index, prep: Any) -> str:
    name = prep.format_constraint(index, _alembic_quote=False)
    return str(name)
