"""Opening a source database read-only, in its own time zone."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from watchdog.config import SourceSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10


def open_source_engine(source: SourceSettings) -> Engine:
    """An engine that cannot write to the source where the driver allows it.

    SQLite files are opened with `mode=ro`; PostgreSQL sessions default to read-only
    transactions and use the source's time zone, so naive timestamps compare the way
    the source means them. Other back ends rely on the account having no write grants.
    """
    url = make_url(source.url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            raise ValueError(f'source "{source.name}": a SQLite source needs a file path')
        uri = f"{Path(database).resolve().as_uri()}?mode=ro"

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            # The wrapped query sorts by updated_at; keep that sort in memory rather
            # than in temporary files (a first poll sorts the whole table).
            connection.execute("PRAGMA temp_store=MEMORY")
            connection.execute("PRAGMA cache_size=-65536")
            return connection

        # No pool: a file is cheap to open, and a pooled connection (SQLAlchemy keeps
        # one per thread for this URL) would go on reading a file renamed or replaced
        # under it (a backup restored), while a new one sees what is there now.
        return create_engine("sqlite://", creator=connect, poolclass=NullPool)
    if backend == "postgresql":
        options = f"-c default_transaction_read_only=on -c TimeZone={source.timezone.key}"
        # A host that drops packets would otherwise hold the cycle for minutes.
        arguments = {"options": options, "connect_timeout": CONNECT_TIMEOUT_SECONDS}
        return create_engine(source.url, connect_args=arguments, pool_pre_ping=True)
    log.warning(
        'source "%s": %s cannot be opened read-only by watchdog; give its account read grants only',
        source.name,
        backend,
    )
    return create_engine(source.url, pool_pre_ping=True)
