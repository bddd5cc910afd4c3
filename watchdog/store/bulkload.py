"""The first load of an entity into an empty table, without its secondary indexes.

Keeping four B-trees in order row by row costs the writer most of its time on a first
load of millions of rows; building an index once over a full table is a sort and far
cheaper. So when a table is empty, its secondary indexes (not the primary key, which
the upsert needs) are dropped for the load and built again right after it. A process
that dies in between leaves them missing: `restore_indexes` recreates any missing
index and runs before every poller's first poll.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, Index, Table, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from watchdog.store import schema

log = logging.getLogger(__name__)


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
    for index in table.indexes:
        _tolerating_a_race(store, index, create=False)
    try:
        yield
    finally:
        for index in table.indexes:
            _tolerating_a_race(store, index, create=True)


def _tolerating_a_race(store: Engine, index: Index, *, create: bool) -> None:
    try:
        if create:
            index.create(store, checkfirst=True)
        else:
            index.drop(store, checkfirst=True)
    except SQLAlchemyError:
        # Between the check and the statement another loader did the same thing.
        if _exists(store, index) != create:
            raise


def _exists(store: Engine, index: Index) -> bool:
    assert index.table is not None
    with store.connect() as connection:
        names = {i["name"] for i in inspect(connection).get_indexes(index.table.name)}
    return index.name in names


def restore_indexes(store: Engine) -> None:
    """Create any secondary index of the entity tables that a dead first load left out.

    A failure is logged and left to the next start: queries only get slower without an
    index, which must not stop polling."""
    for table in schema.ENTITY_TABLES.values():
        for index in table.indexes:
            try:
                index.create(store, checkfirst=True)
            except SQLAlchemyError as exc:
                log.warning("cannot create index %s: %s", index.name, str(exc).splitlines()[0])
