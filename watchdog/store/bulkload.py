"""The first load of an entity into an empty table, without its secondary indexes.

Keeping four B-trees in order row by row costs the writer most of its time on a first
load of millions of rows; building an index once over a full table is a sort and far
cheaper. So when a table is empty, its secondary indexes (not the primary key, which
the upsert needs) are dropped for the load and built again right after it. A process
that dies in between leaves them missing: `restore_indexes` recreates any missing
index and runs before every poller's first poll.

The exception is the index on (source, change_seq): all rows of one load have the same
source and the same poll sequence, so its entries come in rowid order and each insert
appends at the end of the index, on the writer thread. Rebuilding it after the load
was a full table scan on the loading thread while nothing else ran (1.5-2 s for 4M
step rows); keeping it cost the writer ~0.3 s per million rows. With that and the
helper threads of `_sorting_in_parallel`, the index builds after a first load of 1M
cases (5.5M rows) went from 8.4 s to 4.8 s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, Index, Table, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from watchdog.store import schema

log = logging.getLogger(__name__)

# SQLite sorts for CREATE INDEX on up to two helper threads, in chunks of 32 MB (see
# `_sorting_in_parallel`).
SORT_THREADS = 2
SORT_BUFFER_KIB = 32_768


def is_empty(store: Engine, table: Table) -> bool:
    with store.connect() as connection:
        return connection.execute(select(1).select_from(table).limit(1)).first() is None


@contextmanager
def indexes_deferred(store: Engine, table: Table) -> Iterator[None]:
    """Drop the table's secondary indexes for the block; build them again after it,
    whether it succeeded or not.

    Two sources may first-load into the same empty table at once (one daemon polls its
    sources in parallel; several daemons share a PostgreSQL store): each may find an
    index already dropped or already built by the other, which is no error, as indexes
    only make queries faster.
    """
    deferred = [index for index in table.indexes if not _appended_in_order(index)]
    for index in deferred:
        _tolerating_a_race(store, index, create=False)
    try:
        yield
    finally:
        for index in deferred:
            _tolerating_a_race(store, index, create=True)
        _gather_statistics(store, table)


def _gather_statistics(store: Engine, table: Table) -> None:
    """On PostgreSQL, ANALYZE a table just loaded: the evaluation that follows in the
    same cycle would otherwise be planned for an empty table (autovacuum gets to it
    only a minute or more later). SQLite plans without statistics as well as with."""
    if store.dialect.name != "postgresql":
        return
    try:
        with store.begin() as connection:
            connection.exec_driver_sql(f"ANALYZE {table.name}")
    except SQLAlchemyError as exc:  # plans without statistics are slower, not wrong
        log.warning("cannot ANALYZE %s: %s", table.name, str(exc).splitlines()[0])


def _appended_in_order(index: Index) -> bool:
    """Whether a load adds the index's entries in its order (see the module's doc)."""
    return tuple(column.name for column in index.columns) == ("source", "change_seq")


def _tolerating_a_race(store: Engine, index: Index, *, create: bool) -> None:
    try:
        if create:
            with store.begin() as connection, _sorting_in_parallel(connection):
                index.create(connection, checkfirst=True)
        else:
            index.drop(store, checkfirst=True)
    except SQLAlchemyError:
        # Between the check and the statement another loader did the same thing.
        if _exists(store, index) != create:
            raise


@contextmanager
def _sorting_in_parallel(connection: Connection) -> Iterator[None]:
    """On SQLite, let CREATE INDEX sort on helper threads while it scans the table.

    SQLite's sorter hands a chunk to a helper thread (`PRAGMA threads`) each time its
    buffer, as large as the page cache, fills up, and merges the chunks in parallel.
    With the store's 128 MB cache the index of 4M steps on (source, case_id) fits in
    one or two chunks and the helpers have nothing to do (4.2 s with or without them);
    with 32 MB chunks they sort beside the scan: 2.9-3.6 s (16 or 64 MB: the same).
    Both settings are put back, as the connection returns to the pool.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    cache = int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())
    connection.exec_driver_sql(f"PRAGMA threads={SORT_THREADS}")
    connection.exec_driver_sql(f"PRAGMA cache_size=-{SORT_BUFFER_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size={cache}")
        connection.exec_driver_sql("PRAGMA threads=0")


def _exists(store: Engine, index: Index) -> bool:
    assert index.table is not None
    with store.connect() as connection:
        names = {i["name"] for i in inspect(connection).get_indexes(index.table.name)}
    return index.name in names


def restore_indexes(store: Engine) -> None:
    """Create any secondary index of the entity tables that a dead first load left out.

    The indexes there are listed once (asking for each costs three catalog queries, a
    tenth of a second on PostgreSQL). A failure is logged and left to the next start:
    queries only get slower without an index, which must not stop polling."""
    try:
        with store.connect() as connection:
            names = [table.name for table in schema.ENTITY_TABLES.values()]
            found = inspect(connection).get_multi_indexes(filter_names=names)
            present = {index["name"] for indexes in found.values() for index in indexes}
    except SQLAlchemyError as exc:
        log.warning("cannot list the store's indexes: %s", str(exc).splitlines()[0])
        return
    for table in schema.ENTITY_TABLES.values():
        for index in table.indexes:
            if index.name in present:
                continue
            try:
                index.create(store, checkfirst=True)
            except SQLAlchemyError as exc:
                log.warning("cannot create index %s: %s", index.name, str(exc).splitlines()[0])
