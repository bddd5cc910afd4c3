"""Notice numbers: `PREFIX-YEAR-NNNNNN`, gapless within a year, never duplicated.

The number is drawn from `notice_counters` inside the transaction that inserts the
notice, with one conditional increment:

    INSERT INTO notice_counters (prefix, year, last_number) VALUES (:prefix, :year, 1)
    ON CONFLICT (prefix, year) DO UPDATE SET last_number = notice_counters.last_number + 1
    RETURNING last_number

On PostgreSQL the upsert locks the counter row until the transaction ends, so a second
daemon drawing at the same time waits and then reads the incremented value; a
transaction that rolls back returns its number with it, which keeps the year gapless.
On SQLite the database-wide write lock serialises the same way.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from watchdog.store import schema


def format_number(prefix: str, year: int, number: int) -> str:
    """`JC-2026-000123`; numbers past 999999 simply grow a digit."""
    return f"{prefix}-{year}-{number:06d}"


def draw_number(connection: Connection, prefix: str, year: int) -> int:
    """The next number of `prefix` in `year`, counted in the caller's transaction."""
    table = schema.notice_counters
    dialect = connection.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    if dialect not in {"postgresql", "sqlite"}:
        raise RuntimeError(f"notice numbering supports PostgreSQL and SQLite, not {dialect}")
    statement = (
        insert(table)
        .values(prefix=prefix, year=year, last_number=1)
        .on_conflict_do_update(
            index_elements=[table.c.prefix, table.c.year],
            set_={"last_number": table.c.last_number + 1},
        )
        .returning(table.c.last_number)
    )
    number: int = connection.execute(statement).scalar_one()
    return number
