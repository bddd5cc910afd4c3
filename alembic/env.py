"""Alembic environment: the same migrations on SQLite (batch mode) and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from alembic import context
from watchdog.store.schema import metadata

config = context.config


def run_migrations() -> None:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:
        raise RuntimeError("run migrations through `watchdog db upgrade`, which passes the engine")
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # Batch mode rebuilds a table by copy, drop and rename; with foreign keys on,
            # dropping a table other rows refer to fails on a store holding data. SQLite
            # ignores this pragma inside a transaction, so it is set before one begins.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if sqlite:
                    # The sqlite3 module begins a transaction only before DML, so DDL
                    # would commit statement by statement; an explicit BEGIN makes a
                    # failing migration roll back whole (SQLite's DDL is transactional).
                    connection.exec_driver_sql("BEGIN")
                context.configure(
                    connection=connection,
                    target_metadata=metadata,
                    render_as_batch=sqlite,
                    compare_type=True,
                )
                with context.begin_transaction():
                    context.run_migrations()
                if sqlite:
                    _refuse_broken_references(connection)
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def _refuse_broken_references(connection: Connection) -> None:
    """With the checks off, a migration could leave a row pointing nowhere: roll back."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent = broken[0][0], broken[0][1], broken[0][2]
        raise RuntimeError(
            f"migration left {len(broken)} row(s) with a broken reference, "
            f"first {table} rowid {rowid} -> {parent}; rolled back"
        )


run_migrations()
