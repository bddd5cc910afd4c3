"""Reading a source: streamed in batches from PostgreSQL, errors while reading named."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, event, text

from tests.conftest import _pg_url
from tests.test_poller import CASES, make_source, poller_for, row, settings_for, stored_ids
from watchdog.config import SourceSettings
from watchdog.sources.connect import open_source_engine
from watchdog.sources.poller import SourceError, SourcePoller


def pg_source(database: str, schema: str, rows: list[tuple[object, ...]]) -> None:
    engine = create_engine(_pg_url(database))
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(
            text(
                f'CREATE TABLE "{schema}".cases (id text PRIMARY KEY, dept text, '
                "accepted timestamp, lim integer, changed timestamp)"
            )
        )
        connection.execute(
            text(f'INSERT INTO "{schema}".cases VALUES (:id, :dept, :accepted, :lim, :changed)'),
            [dict(zip(("id", "dept", "accepted", "lim", "changed"), r, strict=True)) for r in rows],
        )
    engine.dispose()


def pg_row(case_id: str, minute: int) -> tuple[object, ...]:
    return (case_id, "SCJGJ", datetime(2026, 3, 2, 10), 5, datetime(2026, 3, 5, 10, minute))


def test_a_postgresql_source_is_read_through_a_server_side_cursor_in_batches(
    store: Engine, pg_database: str, tmp_path: Path
) -> None:
    schema = f"source_{store.dialect.name}"
    pg_source(pg_database, schema, [pg_row(f"C{i}", i) for i in range(7)])
    query = CASES.replace("FROM cases", f'FROM "{schema}".cases')
    settings = settings_for(tmp_path / "unused.db", query, batch_size=2)
    settings = SourceSettings(**{**settings.__dict__, "url": _pg_url(pg_database)})
    source = open_source_engine(settings)
    cursors: list[Any] = []

    @event.listens_for(source, "before_cursor_execute")
    def remember(_c: Any, cursor: Any, statement: str, *_rest: Any) -> None:
        if "ORDER BY q.updated_at" in statement:
            cursors.append(cursor)

    fixed = datetime(2026, 3, 10, tzinfo=UTC)
    poller = SourcePoller(settings, source, store, clock=lambda: fixed)
    first = poller.poll()
    # Seven rows in batches of two: none lost, not even a row the cursor fetched ahead.
    assert (first.rows_read, first.rows_changed, first.rows_quarantined) == (7, 7, 0)
    assert stored_ids(store) == [f"C{i}" for i in range(7)]
    # A server-side cursor: the source sends rows as they are fetched, not all at once.
    assert [type(c) for c in cursors] == [psycopg.ServerCursor]

    with create_engine(_pg_url(pg_database)).begin() as connection:
        connection.execute(
            text(
                f'UPDATE "{schema}".cases SET lim = 9, '
                "changed = changed + interval '1 hour' WHERE id = 'C3'"
            )
        )
    second = poller.poll()
    assert (second.entities[0].rows_changed, len(cursors)) == (1, 2)
    source.dispose()


def test_a_postgresql_source_of_fewer_rows_than_a_batch_is_read_to_the_end(
    store: Engine, pg_database: str, tmp_path: Path
) -> None:
    # The cursor fetches one row ahead, and the read that finds the end closes it.
    schema = f"single_{store.dialect.name}"
    pg_source(pg_database, schema, [pg_row("C1", 0)])
    query = CASES.replace("FROM cases", f'FROM "{schema}".cases')
    settings = settings_for(tmp_path / "unused.db", query, batch_size=2)
    settings = SourceSettings(**{**settings.__dict__, "url": _pg_url(pg_database)})
    source = open_source_engine(settings)
    result = SourcePoller(settings, source, store).poll()
    assert (result.rows_read, stored_ids(store)) == (1, ["C1"])
    source.dispose()


def failing_source(tmp_path: Path, ids: list[str], failing: str) -> tuple[Path, str]:
    """A source of cases `ids` (a minute apart) and a query that fails on case `failing`."""
    path = make_source(tmp_path, [row(i, f"2026-03-05 10:{n:02d}:00") for n, i in enumerate(ids)])
    with sqlite3.connect(path) as connection:
        # Rows come in index order, each computed as it is fetched: the failing case
        # fails only when the read reaches it, after the first batches were stored.
        connection.execute("CREATE INDEX by_changed ON cases (changed)")
    broken = f"CASE WHEN id = '{failing}' THEN json('broken') ELSE lim END AS promised_limit"
    return path, CASES.replace("lim AS promised_limit", broken)


def assert_one_line_read_error(error: SourceError) -> None:
    message = str(error)
    assert message.startswith('source "county": cases query failed: ')
    assert "malformed JSON" in message
    assert "\n" not in message


def test_a_source_failing_in_the_middle_of_the_read_is_a_one_line_error(
    store: Engine, tmp_path: Path
) -> None:
    path, query = failing_source(tmp_path, [f"C{i}" for i in range(7)], "C5")
    with pytest.raises(SourceError) as caught:
        poller_for(path, store, query).poll()
    assert_one_line_read_error(caught.value)
    assert stored_ids(store) == ["C0", "C1", "C2", "C3"]
