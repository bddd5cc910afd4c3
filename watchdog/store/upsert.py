"""Upserting source rows into the store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from itertools import chain
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


# SQLite (3.32 and later) binds at most 32,766 variables in one statement. SQLite
# statements take as many rows as that allows (3,276 of the 10 columns of steps): each
# statement is one more time the writer takes the GIL back from a busy reading thread.
# First load of 1M cases, writer's upsert time: 35.3 s with 1,000 rows a statement,
# 26.1 s with the most (in isolation, with a Python thread busy beside it, 600k step
# rows: 7.2 s at 1,000, 4.6-4.9 s at 2,000-2,500).
SQLITE_MAX_VARIABLES = 32_766
_REMAINDER_SIZES = (256, 16, 1)  # the rows left after the largest statements


class BulkUpsert:
    """Upserts batches of rows of one table through the driver's executemany.

    Source rows are many and already validated, so the statement is compiled once and
    rows go to the driver as they are, without SQLAlchemy's per-value bind processing:
    they must already be in the store's encoding (`watchdog.store.encoding`).

    On SQLite one statement carries many rows (`INSERT … VALUES (…), (…), … ON
    CONFLICT …`, see `_sqlite_multi_row`); PostgreSQL gets the one-row statement
    through psycopg's executemany.
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
        self.sql = str(compiled)
        self.multi_row = dialect.name == "sqlite"
        self.rows_per_statement = max(1, SQLITE_MAX_VARIABLES // len(self.columns))
        # Statements of a few fixed sizes, largest first: SQLite compiles a statement once
        # per connection and keeps it, but one of each batch's own size was compiled anew
        # every time (an incremental poll of 2,000 rows spent 1.4 s on it at 1M cases).
        sizes = sorted({self.rows_per_statement, *_REMAINDER_SIZES}, reverse=True)
        self.statements = [
            (size, _sqlite_multi_row(self.sql, len(self.columns), size))
            for size in sizes
            if self.multi_row and size <= self.rows_per_statement
        ]

    def prepare(self, rows: Sequence[Sequence[Any]]) -> Any:
        """Driver parameters for rows given as tuples in `columns` order.

        Separate from `execute` so that a pipeline can prepare on the thread that
        produced the rows and leave the writing thread only the database's work. For
        SQLite that is flattening each statement's rows into one tuple of values (0.5 s
        per million step rows; the JSON text it replaces took 1.6 s) and, for the rows
        left over, a statement of their own size.
        """
        if not self.multi_row:
            return [dict(zip(self.columns, row, strict=True)) for row in rows]
        flat = chain.from_iterable
        prepared: list[tuple[str, Any]] = []
        start = 0
        for size, sql in self.statements:  # as many of the largest as fit, then smaller
            end = start + (len(rows) - start) // size * size
            if end > start:
                prepared.append(
                    (sql, [tuple(flat(rows[i : i + size])) for i in range(start, end, size)])
                )
            start = end
        return prepared

    def execute(self, connection: Connection, prepared: Any) -> None:
        """Upsert prepared rows (see `prepare`)."""
        if not prepared:
            return
        if not self.multi_row:
            connection.exec_driver_sql(self.sql, prepared)
            return
        for sql, parameters in prepared:  # each an executemany of one statement size
            connection.exec_driver_sql(sql, parameters)


def _sqlite_multi_row(sql: str, width: int, rows: int) -> str:
    """Rewrite `INSERT … VALUES (?, …) ON CONFLICT …` to insert `rows` rows at once.

    With executemany, SQLite's driver takes the GIL back after every statement; while
    the poller's reading thread is busy, doing that for every row costs far more than
    the insert itself. A statement of many rows runs them all inside SQLite with the
    GIL free. It replaces one statement over `json_each(?)` of the whole batch, which
    needed the batch as JSON text (json.dumps on the reading thread: 10.5 s of a
    5.5M-row first load) and extracted every value again with `json_extract` (1M step
    rows: 10.9 s including the encoding, against 7.4-7.8 s this way at 1,000-3,000 rows
    a statement). Binding the values still holds the GIL, on the writer thread.
    Rows conflicting with each other within one statement are upserted in order, as
    separate statements would be.
    """
    one = "(" + ", ".join("?" * width) + ")"
    values = "VALUES " + one
    if values not in sql:
        raise ValueError(f"unexpected upsert form: {sql}")
    return sql.replace(values, "VALUES " + ", ".join([one] * rows), 1)
