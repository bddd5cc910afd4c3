"""Writing many rows at once: COPY and one UPDATE on PostgreSQL, an executemany elsewhere.

A full evaluation writes hundreds of thousands of violations, events and audit entries.
Through SQLAlchemy's executemany (insertmanyvalues) PostgreSQL parses and plans a
statement per batch and the client builds and psycopg parses its SQL text; COPY streams
the rows instead. Both write in the caller's transaction, in the order the rows are
given, and a rollback takes them back alike.

Values are passed through the columns' bind processors for the dialect, so COPY writes
what an INSERT of the same rows would: a JSON column gets the text SQLAlchemy's JSON
type serializes (psycopg's `Json`, the engine's serializer), a `UTCDateTime` the same
UTC instant (naive values refused). A key missing from the rows leaves its column to
its default, NULL, as an INSERT without it does (JSON columns: SQL NULL, not JSON null).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Connection, Executable, Table, insert, text
from sqlalchemy.exc import DBAPIError

# Below this many rows a plain INSERT is kept. COPY costs round trips of its own
# (start, data, end; taking ids first one more), an executemany of a few rows is one
# statement. Best of 15 on PostgreSQL 15, local TCP: violations (ids + COPY against
# INSERT … RETURNING) 2 rows 0.5 against 0.4 ms, 5 rows 0.6 against 0.7 ms, 20 rows
# 1.0 against 1.7 ms, 50 rows 1.8 against 3.8 ms, 200 rows 5.4 against 14 ms; events
# (COPY against INSERT) 5 rows 0.3 against 0.5 ms, 20 rows 0.5 against 1.1 ms. Under
# 20 rows COPY saves less than a millisecond a batch, while an INSERT stays visible to
# statement-level instrumentation (SQLAlchemy's cursor events, pg_stat_statements):
# the few rows of an incremental cycle go by INSERT, a full evaluation's thousands by
# COPY.
COPY_MIN_ROWS = 20


def uses_copy(connection: Connection, count: int) -> bool:
    """Whether `insert_rows` writes `count` rows by COPY on this connection (psycopg 3's
    copy API; another PostgreSQL driver inserts as SQLite does)."""
    dialect = connection.dialect
    return dialect.name == "postgresql" and dialect.driver == "psycopg" and count >= COPY_MIN_ROWS


def insert_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    statement: Executable | None = None,
    verbatim: Collection[str] = (),
) -> None:
    """Insert `rows` (dicts with the same keys) into `table`, in order.

    PostgreSQL with at least `COPY_MIN_ROWS` rows: one COPY. Otherwise `statement`
    (by default `insert(table)`) executed with the rows, as an executemany.
    Columns named in `verbatim` hold values already in the column's stored form (JSON
    text, say) and are written as they are by COPY; `statement` must take them so too.
    """
    if not rows:
        return
    if not uses_copy(connection, len(rows)):
        connection.execute(insert(table) if statement is None else statement, rows)
        return
    names = list(rows[0])
    processors = _processors(connection, table, names, verbatim)
    columns = ", ".join(connection.dialect.identifier_preparer.quote(name) for name in names)
    sql = (
        f"COPY {connection.dialect.identifier_preparer.format_table(table)} ({columns}) FROM STDIN"
    )
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(sql) as copy:
            write = copy.write_row
            if not processors:
                for row in rows:
                    write([row[name] for name in names])
            else:
                for row in rows:
                    values = [row[name] for name in names]
                    for index, process in processors:
                        values[index] = process(values[index])
                    write(values)
    except connection.dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy raises the driver's errors elsewhere (IntegrityError, DataError,
        # OperationalError…), so that callers catch them alike.
        raise DBAPIError.instance(sql, None, exc, connection.dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()


def update_rows(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *, statement: Executable
) -> None:
    """Update rows of `table` by id: `rows` are dicts with the id as `_id` and the same
    columns to set; `statement` (UPDATE … WHERE id = :_id) runs them as an executemany.

    PostgreSQL with at least `COPY_MIN_ROWS` rows: one statement instead, over the rows
    sent as one JSON array (`json_to_recordset`). psycopg's executemany sends the
    statement once per row (an incremental cycle's 500 evidence updates: 0.24 s).
    Values are bound as the column types bind them; a JSON column's value is nested in
    the array, and PostgreSQL's `json` keeps its text as `json.dumps` wrote it, which is
    what SQLAlchemy's JSON type writes."""
    if not rows:
        return
    if not uses_copy(connection, len(rows)):
        connection.execute(statement, rows)
        return
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    names = [name for name in rows[0] if name != "_id"]
    fields = ", ".join(f"{quote(name)} {table.c[name].type.compile(dialect)}" for name in names)
    assignments = ", ".join(f"{quote(name)} = d.{quote(name)}" for name in names)
    target = dialect.identifier_preparer.format_table(table)
    sql = (
        f"UPDATE {target} SET {assignments} "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS d(_id bigint, {fields}) "
        f"WHERE {target}.id = d._id"
    )
    converters = [(name, _json_value(connection, table, name)) for name in names]
    payload = [
        {"_id": row["_id"], **{name: convert(row[name]) for name, convert in converters}}
        for row in rows
    ]
    connection.execute(text(sql), {"rows": json.dumps(payload)})


def _json_value(connection: Connection, table: Table, name: str) -> Callable[[Any], Any]:
    """How a value of the column goes into the JSON array: a JSON column's as it is, any
    other bound as its type binds it (an aware UTC datetime, say) and then as text."""
    column_type = table.c[name].type
    if isinstance(column_type, JSON):
        return lambda value: value
    process = column_type.dialect_impl(connection.dialect).bind_processor(connection.dialect)

    def convert(value: Any) -> Any:
        if process is not None:
            value = process(value)
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        return value

    return convert


def next_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """`count` new ids from the sequence of `table`'s `id` column, ascending (PostgreSQL).

    Rows copied with these ids are numbered as an INSERT would have numbered them, and
    the sequence goes on after them."""
    ids = connection.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": connection.dialect.identifier_preparer.format_table(table), "n": count},
    ).scalars()
    return sorted(int(value) for value in ids)


def _processors(
    connection: Connection, table: Table, names: Sequence[str], verbatim: Collection[str]
) -> list[tuple[int, Callable[[Any], Any]]]:
    """The bind processors of the named columns that have one, by position."""
    dialect = connection.dialect
    found: list[tuple[int, Callable[[Any], Any]]] = []
    for index, name in enumerate(names):
        if name in verbatim:
            continue
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            found.append((index, process))
    return found
