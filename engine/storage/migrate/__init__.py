"""Safe schema migrations: compare the blueprint with the live database, then apply.

:func:`plan_migration` reflects the database, compares it with the tables
:func:`~engine.storage.schema.build_schema` wants and lists every change as a
:class:`Change`, marking those that can lose data. It never writes.

:func:`apply_migration` takes the migration lock, plans again under it (so a
second migrator that waited finds nothing left to do), refuses data loss unless
it is allowed, takes a backup first when it is, and applies the whole plan in
one transaction with alembic's operations ("move and copy" batch mode on SQLite
for what SQLite cannot ALTER in place). The blueprint digest, a schema digest, a
schema-state counter and a summary of the migration are recorded in ``ff_meta``;
:func:`ensure_current` compares them with a blueprint so ``formflow serve``
refuses to start on a database that is behind.

Rules:

- A table or a column is renamed only when the entity or field says
  ``renamed_from:``; otherwise a name that disappears is dropped (data loss)
  and the new name is added.
- Data loss: dropping an entity, a table field or a field; narrowing a type or a
  length (VARCHAR(200) -> VARCHAR(50), TEXT -> VARCHAR, decimal -> integer, fewer
  decimal places); converting between kinds that do not always convert (text ->
  date ...); pointing a reference at another entity; a new required field without
  a default on a table that has rows ("would leave existing rows invalid": when
  allowed, those rows keep an empty value).
- Converting values: within a family (text, integer/decimal) the database does
  it after the values are cut or rounded to fit; across families the values are
  converted in Python, the same way on SQLite and PostgreSQL, and a value that
  does not convert becomes empty.
- A new required field with a plain ``default`` gets that default in existing
  rows. A ``default_formula`` cannot be evaluated here; existing rows stay empty.
- System tables (``ff_*``) only ever grow: missing tables, columns and indexes
  are added, nothing is dropped or narrowed.
- Tables that are not Formflow's (no ``e_`` or ``ff_`` prefix) and backups
  (``ff_backup_*``) are never touched.
"""

from __future__ import annotations

from engine.storage.migrate.api import (
    StoredState,
    apply_migration,
    ensure_current,
    initialise,
    plan_migration,
    stored_state,
)
from engine.storage.migrate.backups import backup_table_name
from engine.storage.migrate.meta import MIGRATION_LOCK_KEY, blueprint_digest, schema_digest
from engine.storage.migrate.results import (
    Change,
    MigrationFailed,
    MigrationRefused,
    MigrationResult,
    Plan,
)
from engine.storage.schema import normalise_unique

__all__ = [
    "MIGRATION_LOCK_KEY",
    "Change",
    "MigrationFailed",
    "MigrationRefused",
    "MigrationResult",
    "Plan",
    "StoredState",
    "apply_migration",
    "backup_table_name",
    "blueprint_digest",
    "ensure_current",
    "initialise",
    "normalise_unique",
    "plan_migration",
    "schema_digest",
    "stored_state",
]
