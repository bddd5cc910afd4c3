"""A long read goes on in a reading process: nothing lost, nothing quarantined twice,
its errors named as the poller's own, and the process never outlives the poll."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from tests.conftest import _pg_url
from tests.test_poll_source_read import assert_one_line_read_error, failing_source, pg_source
from tests.test_poller import CASES, make_source, row, settings_for, stored_ids
from watchdog.config import SourceSettings
from watchdog.sources import poller as poller_module
from watchdog.sources.connect import open_source_engine
from watchdog.sources.poller import SourceError, SourcePoller
from watchdog.sources.reading import ReadError, ReadRequest, read_in_process
from watchdog.store import schema
from watchdog.store.database import create_store_engine, upgrade_store

FIXED = datetime(2026, 3, 10, tzinfo=UTC)
HANDOVER = "goes on in a reading process"


def poller(settings: SourceSettings, store: Engine, handover_rows: int | None) -> SourcePoller:
    return SourcePoller(
        settings,
        open_source_engine(settings),
        store,
        clock=lambda: FIXED,
        handover_rows=handover_rows,
    )


def quarantined(store: Engine) -> list[tuple[str | None, int]]:
    table = schema.quarantine
    with store.connect() as connection:
        return [
            (r.row_key, r.times_seen)
            for r in connection.execute(select(table.c.row_key, table.c.times_seen))
        ]


def source_rows() -> list[tuple[object, ...]]:
    # 40 rows, four of them at each minute: the handover after 12 rows (batches of 4)
    # falls between rows of one updated_at (C08-C11, C08 bad: a negative limit); two
    # rows without one, which SQLite sorts first.
    rows = [
        row(f"C{i:02d}", f"2026-03-05 10:{i // 4:02d}:00", limit=-1 if i == 8 else 5)
        for i in range(40)
    ]
    return [*rows, row("N1", None), row("N2", None)]  # type: ignore[arg-type]


def test_a_read_handed_to_a_reading_process_stores_what_one_process_stores(
    store: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_source(tmp_path, source_rows())
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE INDEX by_changed ON cases (changed)")
    settings = settings_for(path, batch_size=4)
    with caplog.at_level(logging.INFO):
        result = poller(settings, store, handover_rows=12).poll()
    assert HANDOVER in caplog.text
    assert stored_ids(store) == [f"C{i:02d}" for i in range(40) if i != 8]
    # Read here: N1, N2, C00-C09; the reading process starts at C09's minute and skips
    # C08 and C09, read already. Each quarantined row was seen once.
    assert sorted(quarantined(store)) == [("C08", 1), ("N1", 1), ("N2", 1)]
    assert (result.rows_read, result.rows_changed, result.rows_quarantined) == (42, 39, 3)
    assert multiprocessing.active_children() == []

    # An incremental read hands over the same way: the overlap (from 10:04) and C05.
    make_source(tmp_path, [row("C05", "2026-03-05 10:20:00", limit=9)])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = poller(settings, store, handover_rows=12).poll()
    assert HANDOVER in caplog.text
    assert (again.rows_changed, again.rows_quarantined) == (1, 0)
    assert multiprocessing.active_children() == []


def test_rows_without_updated_at_sorted_last_are_read_by_the_reading_process(
    store: Engine, pg_database: str, tmp_path: Path
) -> None:
    # PostgreSQL sorts nulls last: the reading process's query must still include them.
    schema_name = f"handover_{store.dialect.name}"
    rows: list[tuple[object, ...]] = [
        (f"C{i:02d}", "SCJGJ", datetime(2026, 3, 2, 10), 5, datetime(2026, 3, 5, 10, i // 4))
        for i in range(30)
    ]
    rows += [("N1", "SCJGJ", datetime(2026, 3, 2, 10), 5, None)]
    pg_source(pg_database, schema_name, rows)
    query = CASES.replace("FROM cases", f'FROM "{schema_name}".cases')
    settings = settings_for(tmp_path / "unused.db", query, batch_size=4)
    settings = SourceSettings(**{**settings.__dict__, "url": _pg_url(pg_database)})
    result = poller(settings, store, handover_rows=8).poll()
    assert stored_ids(store) == [f"C{i:02d}" for i in range(30)]
    assert quarantined(store) == [("N1", 1)]
    assert (result.rows_changed, result.rows_quarantined) == (30, 1)


def test_a_source_failing_in_the_reading_process_is_the_same_one_line_error(
    store: Engine, tmp_path: Path
) -> None:
    path, query = failing_source(tmp_path, [f"C{i:02d}" for i in range(30)], "C21")
    with pytest.raises(SourceError) as caught:
        poller(settings_for(path, query, batch_size=4), store, handover_rows=8).poll()
    assert_one_line_read_error(caught.value)
    # Read here: C00-C07; by the reading process from C07 on, in batches of four: the
    # batches before the one holding C21 (C19-C22).
    assert stored_ids(store) == [f"C{i:02d}" for i in range(19)]
    assert multiprocessing.active_children() == []


def test_a_store_failing_during_the_reading_process_ends_it(tmp_path: Path) -> None:
    store = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade_store(store)

    def refuse(case_id: str) -> int:
        raise RuntimeError(f"disk gone at {case_id}")

    @event.listens_for(store, "connect")
    def register(connection: Any, _record: Any) -> None:
        connection.create_function("refuse", 1, refuse)

    with store.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER fail_at_c20 BEFORE INSERT ON cases WHEN NEW.case_id = 'C20' "
            "BEGIN SELECT refuse(NEW.case_id); END"
        )
    store.dispose()  # the connections made so far have no `refuse`
    path = make_source(tmp_path, [row(f"C{i:02d}", f"2026-03-05 10:{i:02d}:00") for i in range(30)])
    with pytest.raises(Exception, match="user-defined function raised exception"):
        poller(settings_for(path, batch_size=4), store, handover_rows=8).poll()
    assert multiprocessing.active_children() == []
    store.dispose()


def test_a_row_changed_before_the_reading_process_read_it_again_is_a_revision(
    store: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first load compares no row with the store, except a row this process stored and
    # the reading process then read in a newer version: the source changed it between.
    path = make_source(tmp_path, [row(f"C{i:02d}", f"2026-03-05 10:{i:02d}:00") for i in range(30)])
    original = read_in_process

    def source_changes_first(request: Any) -> Any:
        with sqlite3.connect(path) as connection:
            connection.execute(
                "UPDATE cases SET accepted = '2026-03-03 10:00:00', "
                "changed = '2026-03-05 11:00:00' WHERE id = 'C01'"
            )
        return original(request)

    monkeypatch.setattr(poller_module, "read_in_process", source_changes_first)
    result = poller(settings_for(path, batch_size=4), store, handover_rows=8).poll()
    assert result.revisions == 1
    table = schema.source_revisions
    with store.connect() as connection:
        (revision,) = connection.execute(select(table)).all()
    assert (revision.row_key, revision.field) == ("C01", "accepted_at")
    assert stored_ids(store) == [f"C{i:02d}" for i in range(30)]


def test_a_failure_inside_the_reading_process_is_one_line_and_its_traceback_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_source(tmp_path, [row("C1", "2026-03-05 10:00:00")])
    settings = settings_for(path)
    request = ReadRequest(
        source=replace(settings, queries=dict(settings.queries)),
        entity="no such entity",  # a bug in the caller: the child fails on it
        sql="SELECT * FROM cases WHERE changed >= :since",
        params={"since": "2026-03-05 10:00:00"},
        columns=("id", "dept", "accepted", "lim", "changed"),
        store_dialect="sqlite",
        before=(),
        after=(),
    )
    with caplog.at_level(logging.ERROR), pytest.raises(ReadError) as caught:
        list(read_in_process(request))
    assert str(caught.value) == "KeyError: 'no such entity'"
    assert "Traceback" in caplog.text and "_read_in_child" in caplog.text
    assert multiprocessing.active_children() == []
