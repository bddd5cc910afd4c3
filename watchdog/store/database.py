"""Opening the store, checking its schema revision, and migrating it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from alembic import command


class StoreSchemaError(Exception):
    """The store's schema is not the one this version of watchdog needs."""


# The default 2 MB page cache thrashes once indexes reach hundreds of MB (a county over
# a few years); 128 MB keeps their upper levels in memory. It is per connection, and
# fills as the store grows up to it: resident memory that climbs with the store for
# a while is the cache, not a leak (`bench/soak.py --sqlite-cache-mib`).
SQLITE_CACHE_MIB = 128


def create_store_engine(
    url: str, *, sqlite_cache_mib: int = SQLITE_CACHE_MIB, background_checkpoints: bool = False
) -> Engine:
    """An engine for the watchdog's own store (SQLite file or PostgreSQL).

    `background_checkpoints`: on SQLite, commits leave the write-ahead log to a
    `WalCheckpointer` the caller runs (`store.checkpoint`) instead of copying it back
    themselves."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        def tune(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
            _tune_sqlite(dbapi_connection, sqlite_cache_mib)
            if background_checkpoints:
                dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        event.listen(engine, "connect", tune)
        return engine
    engine = create_engine(url, pool_pre_ping=True)
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _utc_session)
    return engine


def sqlite_file(engine: Engine) -> Path | None:
    """The database file of a SQLite engine; None for PostgreSQL or an in-memory store."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _utc_session(dbapi_connection: Any, _record: Any) -> None:
    """Sessions in UTC, the zone every stored time is in. Times then come back in UTC
    and psycopg hands them over with `timezone.utc`, which `UTCDateTime` keeps as they
    are; in the server's zone (often 'Etc/UTC', a ZoneInfo) each needed a conversion:
    4 of the ~100 CPU-seconds of a full evaluation at 1M cases. Nothing in the store
    depends on the session's zone (SQL that needs a local time names its zone)."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET TIME ZONE 'UTC'")
    finally:
        cursor.close()
        dbapi_connection.autocommit = autocommit


def _tune_sqlite(dbapi_connection: sqlite3.Connection, cache_mib: int) -> None:
    # WAL lets readers (the CLI, the API) work while the daemon writes; foreign keys are
    # off by default in SQLite and we want the same integrity as on PostgreSQL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")  # negative: KiB
    cursor.close()


def migrations_location() -> Path:
    """The alembic/ folder: beside the package in a checkout, inside it when installed."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "alembic", package / "_alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StoreSchemaError(f"migration scripts not found next to {package}")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_location()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(migrations_location()))
    head = script.get_current_head()
    if head is None:
        raise StoreSchemaError("no migration scripts found")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_store(engine: Engine) -> tuple[str | None, str]:
    """Migrate the store to the newest schema; return (revision before, revision after)."""
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    return before, head_revision()


def require_current_schema(engine: Engine) -> None:
    """Refuse to work on a store whose schema is behind (or ahead of) this version."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise StoreSchemaError(
            f"store {where} has no watchdog schema yet: run `watchdog db upgrade` to create it"
        )
    script = ScriptDirectory(str(migrations_location()))
    if script.get_revision(current) is None:
        raise StoreSchemaError(
            f"store {where} is at schema revision {current}, which this watchdog does not "
            f"know (it needs {head}): it was migrated by a newer version"
        )
    raise StoreSchemaError(
        f"store {where} is at schema revision {current} but this watchdog needs {head}: "
        "run `watchdog db upgrade`"
    )
