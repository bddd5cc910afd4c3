"""A row the store refuses although it passed validation is found, quarantined and named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from watchdog.sources.entities import ENTITIES
from watchdog.sources.writer import Batch, BatchWriter
from watchdog.store import schema
from watchdog.store.encoding import encoding_for

NOW = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def store_row(store: Engine, key: str, dept: str | None) -> tuple[object, ...]:
    """A cases row in the store's form, bypassing validation (as a gap in it would)."""
    encoding = encoding_for(store.dialect.name)
    moment = encoding.timestamp(datetime(2026, 3, 2, 2, 0))
    return ("north", key, None, None, dept, None, None, None, moment, 5, None, "W", None, None,
            moment, 1)  # fmt: skip


def write(store: Engine, rows: list[tuple[object, ...]]) -> BatchWriter:
    writer = BatchWriter(
        store, "north", ENTITIES["cases"], encoding_for(store.dialect.name), NOW, revisions=False
    )
    with writer:
        writer.put(Batch(rows=rows, newest=rows[-1][-2], read=len(rows)))
    return writer


def test_a_row_the_store_refuses_is_quarantined_with_the_stores_reason_and_the_rest_stored(
    store: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [store_row(store, f"C{i}", "SCJGJ") for i in range(7)]
    rows[4] = store_row(store, "C4", None)  # dept_code is NOT NULL in the store
    with caplog.at_level("WARNING", logger="watchdog.sources.writer"):
        writer = write(store, rows)
    assert writer.rows_refused == 1
    with store.connect() as connection:
        stored = sorted(connection.scalars(select(schema.cases.c.case_id)))
        quarantined = connection.execute(
            select(
                schema.quarantine.c.entity, schema.quarantine.c.row_key, schema.quarantine.c.reason
            )
        ).all()
        mark = connection.scalar(select(schema.watermarks.c.updated_at))
    assert stored == ["C0", "C1", "C2", "C3", "C5", "C6"]
    assert [(entity, key) for entity, key, _ in quarantined] == [("cases", "C4")]
    reason = quarantined[0][2]
    assert reason.startswith("store refused the row: ")
    assert "dept_code" in reason  # both stores name the column of a NOT NULL breach
    assert mark == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert f'source "north": cases row C4 quarantined: {reason}' in caplog.messages
