"""The migrations build exactly the tables the code declares, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, select

from alembic import command
from watchdog.store import schema
from watchdog.store.database import (
    alembic_config,
    create_store_engine,
    current_revision,
    head_revision,
    upgrade_store,
)


def test_migrated_store_matches_the_declared_schema(store: Engine) -> None:
    assert current_revision(store) == head_revision()
    with store.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, schema.metadata)
    assert differences == []


def test_upgrading_a_store_that_holds_violations_keeps_them_and_their_events(
    store_url: str,
) -> None:
    # Later migrations rebuild tables that other rows refer to (batch mode on SQLite):
    # a store in use, with violations and their events, must come through whole.
    engine = create_store_engine(store_url)
    command.upgrade(alembic_config(engine), "0002")
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    with engine.begin() as connection:
        # Core inserts name only the columns given, all of them in the 0002 schema.
        violation_id = connection.execute(
            insert(schema.violations).values(
                fingerprint="f1",
                rule_id="overdue",
                kind="overdue",
                finding="overdue",
                source="demo",
                case_id="C1",
                scope_key="C1",
                severity="red",
                state="open",
                opened_at=at,
                last_seen_at=at,
                provisional=False,
                evidence={},
            )
        ).inserted_primary_key
        assert violation_id is not None
        connection.execute(
            insert(schema.violation_events).values(
                violation_id=violation_id[0],
                event="opened",
                severity_to="red",
                at=at,
                recorded_at=at,
            )
        )
    upgrade_store(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        rows = connection.execute(
            select(schema.violations.c.fingerprint, schema.violation_events.c.event).join(
                schema.violation_events
            )
        ).all()
        assert [tuple(row) for row in rows] == [("f1", "opened")]
        if engine.dialect.name == "sqlite":  # the migration turned the checks back on
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_the_sqlite_page_cache_is_set_per_connection(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cache.db'}", sqlite_cache_mib=4)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == -4096
    engine.dispose()
