"""The migrations build exactly the tables the code declares, on both dialects."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from watchdog.store import schema
from watchdog.store.database import current_revision, head_revision


def test_migrated_store_matches_the_declared_schema(store: Engine) -> None:
    assert current_revision(store) == head_revision()
    with store.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, schema.metadata)
    assert differences == []
