"""Upserting source rows into the store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Dialect, Table, or_
from sqlalchemy.dialects import postgresql, sqlite


@cache
def upsert_statement(
    dialect: str,
    table: Table,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    compared: tuple[str, ...],
) -> Any:
    """INSERT … ON CONFLICT (key) DO UPDATE … WHERE a `compared` column differs.

    An unchanged row is left alone, so its change marker keeps its old value:
    re-reading rows (an overlap, a retry) costs a read but is never taken for a change.
    The database compares the columns itself, and only for rows that already exist.
    """
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:
        raise ValueError(f"the store supports SQLite and PostgreSQL, not {dialect}")
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=list(key),
        set_={name: excluded[name] for name in columns if name not in key},
        where=or_(*(table.c[name].is_distinct_from(excluded[name]) for name in compared)),
    )


class BulkUpsert:
    """Upserts batches of rows of one table through the driver's executemany.

    Source rows are many and already validated, so the statement is compiled once and
    rows go to the driver as they are, without SQLAlchemy's per-value bind processing:
    they must already be in the store's encoding (`watchdog.store.encoding`).
    """

    def __init__(
        self,
        dialect: Dialect,
        table: Table,
        columns: Sequence[str],
        *,
        key: Sequence[str],
        compared: Sequence[str],
    ) -> None:
        statement = upsert_statement(
            dialect.name, table, tuple(columns), tuple(key), tuple(compared)
        )
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        self.columns = tuple(columns)
        self.json_batch = dialect.name == "sqlite"
        if self.json_batch:
            self.sql = _sqlite_json_batch(str(compiled), len(self.columns))
        else:
            self.sql = str(compiled)

    def prepare(self, rows: Sequence[Sequence[Any]]) -> Any:
        """Driver parameters for rows given as tuples in `columns` order.

        Separate from `execute` so that a pipeline can prepare on the thread that
        produced the rows and leave the writing thread only the database's work.
        """
        if self.json_batch:
            return (json.dumps(rows, ensure_ascii=False, separators=(",", ":")),)
        return [dict(zip(self.columns, row, strict=True)) for row in rows]

    def execute(self, connection: Connection, prepared: Any) -> None:
        """Upsert prepared rows (see `prepare`)."""
        if prepared:
            connection.exec_driver_sql(self.sql, prepared)


def _sqlite_json_batch(sql: str, width: int) -> str:
    """Rewrite `INSERT … VALUES (?, …) ON CONFLICT …` to take one JSON array of rows.

    With executemany, SQLite's driver takes the GIL back after every row; while the
    poller's reading thread is busy that costs far more than the insert itself. One
    statement over `json_each` runs the whole batch inside SQLite with the GIL free.
    """
    values = "VALUES (" + ", ".join("?" * width) + ")"
    if values not in sql:
        raise ValueError(f"unexpected upsert form: {sql}")
    picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(width))
    # "WHERE true" keeps SQLite from reading ON CONFLICT as part of the SELECT's join.
    return sql.replace(values, f"SELECT {picks} FROM json_each(?) WHERE true")
