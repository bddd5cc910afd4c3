"""One upsert helper for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert_changed(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    hash_column: str = "row_hash",
) -> None:
    """Insert rows, or update the stored row when its content hash differs.

    An unchanged row is left alone, so its change marker keeps its old value: re-reading
    rows (an overlap, a retry) costs a read but is never mistaken for a change.
    """
    if not rows:
        return
    dialect = connection.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:
        raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {dialect}")
    excluded = statement.excluded
    updates = {name: excluded[name] for name in rows[0] if name not in key}
    statement = statement.on_conflict_do_update(
        index_elements=list(key),
        set_=updates,
        where=table.c[hash_column] != excluded[hash_column],
    )
    connection.execute(statement, list(rows))
