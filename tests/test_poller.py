"""Incremental polling: watermarks, late commits, change detection, quarantine, errors."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from watchdog.config import SourceSettings
from watchdog.sources.connect import open_source_engine
from watchdog.sources.poller import SourceError, SourcePoller, wrap_query
from watchdog.store import schema

CASES = """SELECT id AS case_id, NULL AS matter_code, NULL AS matter_name, dept AS dept_code,
NULL AS dept_name, NULL AS applicant_id, NULL AS applied_at, accepted AS accepted_at,
lim AS promised_limit, NULL AS statutory_limit, 'W' AS limit_unit, NULL AS completed_at,
NULL AS result, changed AS updated_at FROM cases"""


def make_source(tmp_path: Path, rows: list[tuple[object, ...]]) -> Path:
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS cases "
            "(id TEXT PRIMARY KEY, dept TEXT, accepted TEXT, lim INTEGER, changed TEXT)"
        )
        connection.executemany("INSERT OR REPLACE INTO cases VALUES (?, ?, ?, ?, ?)", rows)
    return path


def settings_for(path: Path, query: str = CASES, batch_size: int = 2) -> SourceSettings:
    return SourceSettings(
        name="county",
        url=f"sqlite:///{path}",
        timezone=ZoneInfo("Asia/Shanghai"),
        poll_interval=timedelta(seconds=60),
        overlap=timedelta(minutes=5),
        batch_size=batch_size,
        queries=MappingProxyType({"cases": query}),
        index=0,
    )


def poller_for(path: Path, store: Engine, query: str = CASES) -> SourcePoller:
    settings = settings_for(path, query)
    fixed = datetime(2026, 3, 10, tzinfo=UTC)
    return SourcePoller(settings, open_source_engine(settings), store, clock=lambda: fixed)


def stored_ids(store: Engine) -> list[str]:
    with store.connect() as connection:
        return list(connection.scalars(select(schema.cases.c.case_id).order_by("case_id")))


def watermark(store: Engine) -> datetime | None:
    with store.connect() as connection:
        value: datetime | None = connection.scalar(select(schema.watermarks.c.updated_at))
        return value


def row(case_id: str, changed: str, limit: int = 5) -> tuple[object, ...]:
    return (case_id, "SCJGJ", "2026-03-02 10:00:00", limit, changed)


def test_the_query_is_wrapped_for_an_incremental_ordered_read() -> None:
    assert wrap_query("SELECT 1", incremental=True) == (
        "SELECT * FROM (SELECT 1) AS q WHERE q.updated_at >= :since ORDER BY q.updated_at"
    )
    assert wrap_query("SELECT 1", incremental=False) == (
        "SELECT * FROM (SELECT 1) AS q ORDER BY q.updated_at"
    )


def test_rows_are_stored_in_batches_and_the_watermark_is_the_newest_updated_at(
    store: Engine, tmp_path: Path
) -> None:
    rows = [row(f"C{i}", f"2026-03-0{i} 10:00:00") for i in range(1, 6)]
    result = poller_for(make_source(tmp_path, rows), store).poll()
    assert stored_ids(store) == ["C1", "C2", "C3", "C4", "C5"]
    assert (result.rows_read, result.rows_changed, result.rows_quarantined) == (5, 5, 0)
    # 2026-03-05 10:00 in Shanghai is 02:00 UTC.
    assert watermark(store) == datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def test_a_row_committed_late_with_the_watermark_timestamp_is_not_missed(
    store: Engine, tmp_path: Path
) -> None:
    path = make_source(tmp_path, [row("C1", "2026-03-05 10:00:00")])
    poller = poller_for(path, store)
    poller.poll()
    make_source(tmp_path, [row("C0", "2026-03-05 10:00:00"), row("C2", "2026-03-05 09:58:00")])
    again = poller.poll()
    assert stored_ids(store) == ["C0", "C1", "C2"]
    assert again.rows_changed == 2  # C1 was re-read in the overlap but had not changed


def test_rows_older_than_the_overlap_are_not_read_again(store: Engine, tmp_path: Path) -> None:
    path = make_source(
        tmp_path, [row("C1", "2026-03-01 10:00:00"), row("C2", "2026-03-05 10:00:00")]
    )
    poller = poller_for(path, store)
    poller.poll()
    assert poller.poll().rows_read == 1


def test_a_changed_row_is_updated_and_marked_with_the_poll_sequence(
    store: Engine, tmp_path: Path
) -> None:
    path = make_source(tmp_path, [row("C1", "2026-03-05 10:00:00", limit=5)])
    poller = poller_for(path, store)
    first = poller.poll()
    make_source(tmp_path, [row("C1", "2026-03-05 11:00:00", limit=7)])
    second = poller.poll()
    with store.connect() as connection:
        stored = connection.execute(select(schema.cases)).one()
    assert stored.promised_limit == 7
    assert stored.change_seq == second.seq == first.seq + 1


def test_bad_rows_are_quarantined_once_and_the_rest_of_the_batch_is_stored(
    store: Engine, tmp_path: Path
) -> None:
    rows = [
        row("C1", "2026-03-05 10:00:00"),
        ("C2", "SCJGJ", "not a time", 5, "2026-03-05 10:00:00"),
        ("C3", None, "2026-03-02 10:00:00", 5, "2026-03-05 10:00:00"),
        row("C4", "2026-03-05 10:00:00", limit=-2),
        row("C5", "2026-03-05 10:00:00"),
    ]
    poller = poller_for(make_source(tmp_path, rows), store)
    result = poller.poll()
    poller.poll()
    assert stored_ids(store) == ["C1", "C5"]
    assert result.rows_quarantined == 3
    with store.connect() as connection:
        quarantined = connection.execute(
            select(schema.quarantine).order_by(schema.quarantine.c.row_key)
        ).all()
    assert [(q.row_key, q.reason, q.times_seen) for q in quarantined] == [
        ("C2", "accepted_at: unparsable timestamp 'not a time'", 2),
        ("C3", "dept_code: missing", 2),
        ("C4", "promised_limit: negative limit -2", 2),
    ]
    assert quarantined[0].row["accepted_at"] == "not a time"


def test_a_query_missing_canonical_columns_is_a_one_line_error(
    store: Engine, tmp_path: Path
) -> None:
    path = make_source(tmp_path, [row("C1", "2026-03-05 10:00:00")])
    poller = poller_for(path, store, "SELECT id AS case_id, changed AS updated_at FROM cases")
    with pytest.raises(SourceError) as caught:
        poller.poll()
    message = str(caught.value)
    assert message.startswith(
        'source "county": cases query returns no column(s) matter_code, matter_name, dept_code'
    )
    assert "\n" not in message


def test_a_broken_query_names_source_and_entity(store: Engine, tmp_path: Path) -> None:
    path = make_source(tmp_path, [])
    with pytest.raises(SourceError) as caught:
        poller_for(path, store, "SELECT * FROM no_such_table").poll()
    assert str(caught.value) == 'source "county": cases query failed: no such table: no_such_table'


def test_an_unreachable_sqlite_source_is_a_one_line_error(store: Engine, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        poller_for(tmp_path / "missing.db", store).poll()
    assert str(caught.value) == (
        'source "county": cases query failed: unable to open database file'
    )


def test_a_sqlite_source_is_opened_read_only(tmp_path: Path) -> None:
    path = make_source(tmp_path, [row("C1", "2026-03-05 10:00:00")])
    engine = open_source_engine(settings_for(path))
    with pytest.raises(OperationalError, match="readonly"), engine.begin() as connection:
        connection.execute(text("DELETE FROM cases"))
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(text("cases"))) == 1


def test_a_postgresql_source_session_is_read_only_and_in_the_source_zone(
    pg_database: str,
) -> None:
    from tests.conftest import _pg_url

    settings = settings_for(Path("unused"))
    settings = SourceSettings(**{**settings.__dict__, "url": _pg_url(pg_database)})
    engine = open_source_engine(settings)
    with engine.connect() as connection:
        assert connection.scalar(text("SHOW default_transaction_read_only")) == "on"
        assert connection.scalar(text("SHOW TimeZone")) == "Asia/Shanghai"
        with pytest.raises(DBAPIError, match="read-only transaction"):
            connection.execute(text("CREATE TABLE intruder (x int)"))
    engine.dispose()


def test_a_query_that_repeats_a_key_keeps_the_newest_row(store: Engine, tmp_path: Path) -> None:
    path = make_source(tmp_path, [row("C1", "2026-03-05 10:00:00", limit=5)])
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE twice (n INTEGER)")
        connection.executemany("INSERT INTO twice VALUES (?)", [(1,), (2,)])
    query = CASES.replace("lim AS promised_limit", "lim + n AS promised_limit").replace(
        "changed AS updated_at FROM cases",
        "datetime(changed, '+' || n || ' minutes') AS updated_at FROM cases, twice",
    )
    result = poller_for(path, store, query).poll()
    assert (result.rows_read, result.rows_changed) == (2, 1)
    with store.connect() as connection:
        assert connection.scalar(select(schema.cases.c.promised_limit)) == 7


def test_an_unreachable_postgresql_source_is_a_one_line_error(
    store: Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path / "unused.db")
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1
    settings = SourceSettings(**{**settings.__dict__, "url": url})
    poller = SourcePoller(settings, open_source_engine(settings), store)
    with pytest.raises(SourceError) as caught:
        poller.poll()
    message = str(caught.value)
    assert message.startswith('source "county": cases query failed: connection failed: ')
    assert "Connection refused" in message
    assert "\n" not in message


def schema_differences(store: Engine) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), schema.metadata))


def test_a_first_load_builds_the_indexes_after_the_rows_and_a_broken_one_is_repaired(
    store: Engine, tmp_path: Path
) -> None:
    from watchdog.store.bulkload import indexes_deferred

    path = make_source(tmp_path, [row(f"C{i}", "2026-03-02 10:00:00") for i in range(5)])
    poller = poller_for(path, store)
    poller.poll()  # empty store: the cases load without their secondary indexes
    assert stored_ids(store) == [f"C{i}" for i in range(5)]
    assert schema_differences(store) == []

    # A load that fails rebuilds the indexes on the way out...
    with pytest.raises(RuntimeError), indexes_deferred(store, schema.steps):
        assert schema_differences(store) != []
        raise RuntimeError("source went away")
    assert schema_differences(store) == []
    # ... and a process killed during a first load leaves them dropped,
    for index in schema.steps.indexes:
        index.drop(store)
    assert schema_differences(store) != []
    # ... and the next poller repairs them before its first poll.
    poller_for(path, store).poll()
    assert schema_differences(store) == []


def test_a_first_load_keeps_only_the_index_it_appends_to_in_order(
    store: Engine, tmp_path: Path
) -> None:
    from sqlalchemy import inspect

    from watchdog.store.bulkload import indexes_deferred

    def index_columns() -> list[list[str]]:
        with store.connect() as connection:
            found = inspect(connection).get_indexes("steps")
        return sorted([str(c) for c in index["column_names"]] for index in found)

    covering = ["source", "case_id", "step_code", "finished_at", "handler_id", "step_id"]
    both = sorted([covering, ["source", "change_seq"]])
    assert index_columns() == both
    with indexes_deferred(store, schema.steps):
        # One load writes one source and one poll sequence: (source, change_seq) gets
        # its entries in order and stays; the index by case would get them at random.
        assert index_columns() == [["source", "change_seq"]]
    assert index_columns() == both
    if store.dialect.name == "sqlite":  # the sorter's settings do not outlive the build
        with store.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == -131072
            assert connection.exec_driver_sql("PRAGMA threads").scalar() == 0


def test_a_first_load_into_postgresql_leaves_the_table_with_statistics(
    store: Engine, tmp_path: Path
) -> None:
    # The evaluation in the same cycle is planned from them (autovacuum comes later).
    poller_for(make_source(tmp_path, [row("C1", "2026-03-05 10:00:00")]), store).poll()
    if store.dialect.name != "postgresql":
        return  # SQLite plans without statistics
    with store.connect() as connection:
        columns = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stats "
                "WHERE schemaname = current_schema() AND tablename = 'cases'"
            )
        )
    assert columns and columns > 0


def test_an_index_a_dead_first_load_left_out_is_created_before_the_next_poll(
    store: Engine, tmp_path: Path
) -> None:
    path = make_source(tmp_path, [row("C1", "2026-03-05 10:00:00")])
    poller_for(path, store).poll()
    index = next(i for i in schema.cases.indexes if i.name == "ix_cases_source_completed_at")
    index.drop(store)
    poller_for(path, store).poll()  # a new poller: a new daemon
    with store.connect() as connection:
        names = {i["name"] for i in inspect(connection).get_indexes("cases")}
    assert "ix_cases_source_completed_at" in names
