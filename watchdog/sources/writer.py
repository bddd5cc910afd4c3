"""Storing polled batches: rows, quarantined rows and the watermark in one transaction.

Writing runs on a thread of its own so that reading and validating the next batch
overlaps with storing this one: SQLite and psycopg release the GIL while the database
works. The queue between them is short, so memory stays bounded by a few batches, and
batches are stored strictly in order, so the watermark only ever moves forward over
rows that are committed.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import DataError, IntegrityError

from watchdog.errors import first_line
from watchdog.sources.entities import Entity, content_hash
from watchdog.sources.revisions import RevisionCapture
from watchdog.store import schema
from watchdog.store.encoding import StoreEncoding
from watchdog.store.upsert import BulkUpsert

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """One batch as read: store-ready rows, rejected rows with reasons, newest time."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    prepared: Any = None  # `rows` as driver parameters, made by `BatchWriter.put`
    bad: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    newest: Any = None  # the newest updated_at among `rows`, in the store's encoding
    read: int = 0
    repeated: int = 0  # rows left out because a newer row of the batch has their key
    # Rows to compare with the store although the writer compares none (a first load):
    # stored earlier in the same read, and read again since.
    revisit: list[tuple[Any, ...]] = field(default_factory=list)


_DONE = Batch()


# Consecutive batches stored in one transaction: at most GROUP_BATCHES of them and
# TRANSACTION_ROWS rows; the writer waits GROUP_WAIT_SECONDS at most for the next one
# before it commits what it has (see `BatchWriter._run`). A first load of 1M cases in
# batches of 20,000 took 44-47 s at 60,000 rows a transaction, 48-52 s at 100,000,
# 59 s at 200,000 and 65 s at 400,000 (a transaction's pages outgrow the page cache),
# 52-54 s at 20,000. The batch limit keeps small batches committing as often as
# before: three batches are never much more to redo after a crash than one.
GROUP_BATCHES = 3
TRANSACTION_ROWS = 60_000
GROUP_WAIT_SECONDS = 0.5


class BatchRefused(Exception):
    """The store refused a batch and no single row of it on its own: names the entity."""


class BatchWriter:
    """Stores the batches of one entity of one source, in order, on a writer thread."""

    def __init__(
        self,
        store: Engine,
        source: str,
        entity: Entity,
        encoding: StoreEncoding,
        now: datetime,
        *,
        revisions: bool = True,
    ) -> None:
        """`revisions` False compares no row with the stored ones (a first load: there
        are none) except a batch's `revisit` rows."""
        self.store = store
        self.source = source
        self.entity = entity
        self.encoding = encoding
        self.now = now
        self.upsert = BulkUpsert(
            store.dialect,
            schema.ENTITY_TABLES[entity.name],
            ("source", *entity.column_names, "change_seq"),
            key=("source", entity.key),
            # updated_at is left out: a touched row with the same content is no change.
            compared=tuple(f.name for f in entity.fields),
        )
        self.revisions = RevisionCapture(store.dialect.name, source, entity, encoding, now)
        self.compare_all = revisions
        self.rows_written = 0
        self.rows_refused = 0  # rows the store refused although they passed validation
        self.newest: datetime | None = None
        self._queue: queue.Queue[Batch] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"store-{source}-{entity.name}", daemon=True
        )

    def __enter__(self) -> BatchWriter:
        self._thread.start()
        return self

    def put(self, batch: Batch) -> None:
        """Queue a batch; raises the writer's error as soon as it has failed."""
        batch.prepared = self.upsert.prepare(batch.rows) if batch.rows else None
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(batch, timeout=0.5)
                return
            except queue.Full:
                continue

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # On the way out, let the writer finish what was queued (or stop at its error).
        while self._thread.is_alive():
            try:
                self._queue.put(_DONE, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        if error is None:
            self._raise_if_failed()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while (batch := self._queue.get()) is not _DONE:
                group = [batch]
                # The next batches share this one's transaction (up to the limits
                # above): SQLite writes every page a transaction touched at its commit,
                # and a first load committing every 20,000 rows spent 7.3 s of 38 s on
                # it. It waits for a batch briefly, not for a slow source.
                rows = len(batch.rows)
                while rows < TRANSACTION_ROWS and len(group) < GROUP_BATCHES:
                    try:
                        waiting = self._queue.get(timeout=GROUP_WAIT_SECONDS)
                    except queue.Empty:
                        break
                    if waiting is _DONE:
                        self._store(group)
                        return
                    group.append(waiting)
                    rows += len(waiting.rows)
                self._store(group)
        except BaseException as exc:  # handed to the reading thread, which re-raises it
            self._error = exc
            # Drain so a blocked put() returns and sees the error.
            while not self._queue.empty():
                self._queue.get_nowait()

    def _store(self, group: list[Batch]) -> None:
        recorded = self.revisions.recorded
        try:
            with self.store.begin() as connection:
                for batch in group:
                    self._write(connection, batch)
        except (DataError, IntegrityError) as exc:
            self.revisions.recorded = recorded  # rolled back: counted again below
            if len(group) > 1:  # find the batch: each alone, in its own transaction
                for batch in group:
                    self._store([batch])
                return
            self._store_refusing(group[0], exc)
            return
        for batch in group:
            self._written(batch)

    def _store_refusing(self, batch: Batch, exc: DataError | IntegrityError) -> None:
        # Validation should have caught it; if it did not, one bad value must still
        # not block the source forever, nor fail without naming its row.
        if not batch.rows:
            raise exc
        refused = self._find_refused(batch.rows)
        if not refused:
            raise BatchRefused(
                f'source "{self.source}": the store refused a batch of {len(batch.rows)} '
                f"{self.entity.name} rows but none of them alone: {first_line(exc)}"
            ) from exc
        self.rows_refused += len(refused)
        wrong = {id(row) for row, _ in refused}
        batch.rows = [row for row in batch.rows if id(row) not in wrong]
        batch.prepared = self.upsert.prepare(batch.rows) if batch.rows else None
        names = self.entity.column_names  # a store row is (source, *names, change_seq)
        batch.bad = batch.bad + [
            (dict(zip(names, row[1:-1], strict=True)), f"store refused the row: {problem}")
            for row, problem in refused
        ]
        with self.store.begin() as connection:
            self._write(connection, batch)
        self._written(batch)

    def _find_refused(self, rows: list[tuple[Any, ...]]) -> list[tuple[tuple[Any, ...], str]]:
        """The rows the store refuses, each with the store's reason, found by bisection:
        each half is tried in a transaction that is rolled back, so k bad rows cost
        about 2·k·log2(n) trial upserts, not n."""
        connection = self.store.connect()
        try:
            transaction = connection.begin()
            try:
                self.upsert.execute(connection, self.upsert.prepare(rows))
                return []
            except (DataError, IntegrityError) as exc:
                if len(rows) == 1:
                    return [(rows[0], first_line(exc))]
            finally:
                transaction.rollback()
        finally:
            connection.close()
        middle = len(rows) // 2
        return self._find_refused(rows[:middle]) + self._find_refused(rows[middle:])

    def _write(self, connection: Connection, batch: Batch) -> None:
        """One batch's statements: revisions, rows, quarantined rows, watermark."""
        compared = batch.rows if self.compare_all else batch.revisit
        if compared:  # before the upsert overwrites the old values
            self.revisions.record(connection, compared)
        self.upsert.execute(connection, batch.prepared)
        self._quarantine(connection, batch.bad)
        if batch.newest is not None:
            newest = self.encoding.read_timestamp(batch.newest)
            self._advance_watermark(connection, newest, batch.read)

    def _written(self, batch: Batch) -> None:
        """Account for a batch once its transaction has committed."""
        self.rows_written += len(batch.rows)
        if batch.newest is not None:
            newest = self.encoding.read_timestamp(batch.newest)
            if self.newest is None or newest > self.newest:
                self.newest = newest
        for row, reason in batch.bad:
            log.warning(
                'source "%s": %s row %s quarantined: %s',
                self.source,
                self.entity.name,
                row.get(self.entity.key),
                reason,
            )

    def _quarantine(self, connection: Connection, bad: list[tuple[dict[str, Any], str]]) -> None:
        table = schema.quarantine
        for row, reason in bad:
            shown = {k: None if v is None else str(v) for k, v in row.items()}
            digest = content_hash([reason, *shown.items()])
            existing = connection.execute(
                select(table.c.id).where(
                    table.c.source == self.source,
                    table.c.entity == self.entity.name,
                    table.c.row_hash == digest,
                )
            ).first()
            if existing is not None:
                connection.execute(
                    update(table)
                    .where(table.c.id == existing.id)
                    .values(last_seen_at=self.now, times_seen=table.c.times_seen + 1)
                )
                continue
            key = row.get(self.entity.key)
            if key is not None:  # PostgreSQL text cannot hold a NUL; the key may be bad
                key = str(key).replace("\x00", "\\x00")[:128]
            connection.execute(
                table.insert().values(
                    source=self.source,
                    entity=self.entity.name,
                    row_key=key,
                    reason=reason,
                    row=shown,
                    row_hash=digest,
                    first_seen_at=self.now,
                    last_seen_at=self.now,
                    times_seen=1,
                )
            )

    def _advance_watermark(self, connection: Connection, newest: datetime, rows: int) -> None:
        marks = schema.watermarks
        key = (marks.c.source == self.source) & (marks.c.entity == self.entity.name)
        current = connection.scalar(select(marks.c.updated_at).where(key))
        if current is None:
            connection.execute(
                marks.insert().values(
                    source=self.source,
                    entity=self.entity.name,
                    updated_at=newest,
                    rows_read=rows,
                    advanced_at=self.now,
                )
            )
            return
        # Never move backwards: a batch of re-read overlap rows is older than the mark.
        connection.execute(
            update(marks)
            .where(key)
            .values(
                updated_at=max(newest, current),
                rows_read=marks.c.rows_read + rows,
                advanced_at=self.now,
            )
        )
