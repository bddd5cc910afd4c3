"""Incremental polling of one source into the store.

For each entity the source's query is wrapped as
`SELECT * FROM (<query>) AS q WHERE q.updated_at >= :since ORDER BY q.updated_at`, where
`since` is the stored watermark minus the source's overlap. Re-reading the overlap is
what catches a row committed late with an `updated_at` at or before the watermark; the
content hash makes the re-read rows no-ops. Rows stream in batches, and each batch is
stored together with the advanced watermark in one transaction, so a crash resumes from
the last batch and never skips one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from watchdog.config import SourceSettings
from watchdog.errors import first_line
from watchdog.sources.entities import ENTITIES, Entity
from watchdog.sources.reading import (
    HANDOVER_ROWS,
    ReadError,
    ReadRequest,
    driver_batches,
    read_in_process,
    validate_batch,
)
from watchdog.sources.validation import RowValidator
from watchdog.sources.writer import Batch, BatchWriter
from watchdog.store import schema
from watchdog.store.bulkload import indexes_deferred, is_empty, restore_indexes
from watchdog.store.encoding import encoding_for

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SourceError(Exception):
    """A source could not be read; the message is one line naming source and entity."""


@dataclass
class EntityPoll:
    entity: str
    rows_read: int = 0
    rows_changed: int = 0
    rows_quarantined: int = 0
    revisions: int = 0  # deciding fields of stored rows the source changed
    watermark: datetime | None = None


@dataclass
class PollResult:
    source: str
    seq: int
    entities: list[EntityPoll] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return sum(e.rows_read for e in self.entities)

    @property
    def rows_changed(self) -> int:
        return sum(e.rows_changed for e in self.entities)

    @property
    def rows_quarantined(self) -> int:
        return sum(e.rows_quarantined for e in self.entities)

    @property
    def revisions(self) -> int:
        return sum(e.revisions for e in self.entities)


def wrap_query(query: str, *, incremental: bool, with_nulls: bool = False) -> str:
    """The query as read: rows from :since on (`with_nulls`: and rows without
    updated_at, which are quarantined) in updated_at order, or all rows in that order."""
    condition = ""
    if incremental:
        condition = " WHERE q.updated_at >= :since"
        if with_nulls:
            condition = " WHERE (q.updated_at >= :since OR q.updated_at IS NULL)"
    return f"SELECT * FROM ({query}) AS q{condition} ORDER BY q.updated_at"


class SourcePoller:
    """Polls one source into the store; one instance per source, reused across cycles."""

    def __init__(
        self,
        source: SourceSettings,
        source_engine: Engine,
        store: Engine,
        clock: Clock = utc_now,
        *,
        handover_rows: int | None = HANDOVER_ROWS,
    ) -> None:
        """`handover_rows`: rows read here before a read goes on in a reading process
        (None: never)."""
        self.source = source
        self.handover_rows = handover_rows
        self.source_engine = source_engine
        self.store = store
        self.clock = clock
        self._indexes_checked = False

    def poll(self) -> PollResult:
        """Read every entity's new rows; raise SourceError if the source fails."""
        started = time.monotonic()
        if not self._indexes_checked:
            restore_indexes(self.store)
            self._indexes_checked = True
        seq = self._begin_poll()
        result = PollResult(self.source.name, seq)
        for name in ENTITIES:
            query = self.source.queries.get(name)
            if query is not None:
                result.entities.append(self._poll_entity(ENTITIES[name], query, seq))
        result.seconds = time.monotonic() - started
        return result

    def _begin_poll(self) -> int:
        with self.store.begin() as connection:
            ensure_source_state(connection, self.source.name)
            state = schema.source_state
            connection.execute(
                update(state)
                .where(state.c.source == self.source.name)
                .values(poll_seq=state.c.poll_seq + 1, last_poll_started_at=self.clock())
            )
            seq = connection.scalar(
                select(state.c.poll_seq).where(state.c.source == self.source.name)
            )
        return int(seq or 0)

    def _poll_entity(self, entity: Entity, query: str, seq: int) -> EntityPoll:
        watermark = self._watermark(entity.name)
        params: dict[str, Any] = {}
        if watermark is not None:
            params["since"] = self._bind_since(watermark - self.source.overlap)
        where = f'source "{self.source.name}": {entity.name} query'
        outcome = EntityPoll(entity.name)
        table = schema.ENTITY_TABLES[entity.name]
        first_load = watermark is None and is_empty(self.store, table)
        writer = BatchWriter(
            self.store,
            self.source.name,
            entity,
            encoding_for(self.store.dialect.name),
            self.clock(),
            revisions=not first_load,  # an empty table has no old values to compare
        )
        batches = self._read(entity, query, params, seq, where)
        try:
            with (
                indexes_deferred(self.store, table) if first_load else nullcontext(),
                closing(batches),  # a read given up (the store failed) ends its process
                writer,
            ):
                for batch in batches:
                    if batch.repeated:
                        log.warning(
                            "%s: %d row(s) repeat a key within one batch (a join in the "
                            "query?); the newest of each is kept",
                            where,
                            batch.repeated,
                        )
                    outcome.rows_read += batch.read
                    outcome.rows_quarantined += len(batch.bad)
                    writer.put(batch)
        except SQLAlchemyError as exc:
            if writer.failed:
                raise  # the store failed, not the source: not this source's fault
            raise SourceError(f"{where} failed: {first_line(exc)}") from exc
        except ReadError as exc:
            raise SourceError(f"{where} failed: {exc}") from exc
        outcome.watermark = writer.newest
        outcome.rows_quarantined += writer.rows_refused  # found only when the store said no
        outcome.revisions = writer.revisions.recorded
        outcome.rows_changed = self._count_changed(entity, seq)
        return outcome

    def _read(
        self, entity: Entity, query: str, params: dict[str, Any], seq: int, where: str
    ) -> Generator[Batch, None, None]:
        """The entity's new rows, validated, in batches; a long read goes on in a
        reading process (`watchdog.sources.reading`) from the last updated_at read here."""
        incremental = "since" in params
        size = self.source.batch_size
        with self.source_engine.connect() as source_connection:
            # yield_per streams (stream_results: a server-side cursor on PostgreSQL),
            # so a source is never held whole in memory.
            rows = source_connection.execution_options(yield_per=size).execute(
                text(wrap_query(query, incremental=incremental)), params
            )
            columns = tuple(name.lower() for name in rows.keys())  # noqa: SIM118 (not a dict)
            self._check_columns(entity, columns, where)
            validator = RowValidator(
                entity,
                self.source.timezone,
                columns,
                encoding_for(self.store.dialect.name),
                before=(self.source.name,),
                after=(seq,),
            )
            updated_at, key = columns.index("updated_at"), columns.index(entity.key)
            read = 0
            resume_from = None
            nulls_first = False
            stored_here: set[str] = set()  # keys this process read (and will store)
            at_last: set[Any] = set()  # raw keys of the rows read at the newest updated_at
            for raw_batch in driver_batches(rows, size):
                if read == 0:
                    nulls_first = raw_batch[0][updated_at] is None
                batch = validate_batch(validator, columns, raw_batch)
                stored_here.update(row[1] for row in batch.rows)
                yield batch
                previous = raw_batch[0][updated_at] if read else None
                read += len(raw_batch)
                last = raw_batch[-1][updated_at]
                at_last = _keys_at_end(raw_batch, updated_at, key, at_last, previous == last)
                if (
                    self.handover_rows is not None
                    and read >= self.handover_rows
                    and last is not None
                ):
                    resume_from = last
                    break
            rows.close()
        if resume_from is None:
            return
        # Rows without updated_at sort all first or all last: read here already if first.
        # (An incremental read never selects them.)
        with_nulls = not incremental and not nulls_first
        log.info("%s: %d rows read; the rest of the read goes on in a reading process", where, read)
        request = ReadRequest(
            source=replace(self.source, queries=dict(self.source.queries)),
            entity=entity.name,
            sql=wrap_query(query, incremental=True, with_nulls=with_nulls),
            params={**params, "since": resume_from},
            columns=columns,
            store_dialect=self.store.dialect.name,
            before=(self.source.name,),
            after=(seq,),
            read_already=frozenset(at_last),
        )
        for batch in read_in_process(request):
            # A row read here may have changed before the reading process read it again:
            # a first load compares no row with the store, except these.
            batch.revisit = [row for row in batch.rows if row[1] in stored_here]
            yield batch

    def _count_changed(self, entity: Entity, seq: int) -> int:
        table = schema.ENTITY_TABLES[entity.name]
        with self.store.connect() as connection:
            count = connection.scalar(
                select(func.count())
                .select_from(table)
                .where(table.c.source == self.source.name, table.c.change_seq == seq)
            )
        return int(count or 0)

    def _check_columns(self, entity: Entity, columns: Sequence[str], where: str) -> None:
        missing = [c for c in entity.column_names if c not in columns]
        if missing:
            raise SourceError(
                f"{where} returns no column(s) {', '.join(missing)} "
                f"(it returned: {', '.join(columns)})"
            )

    def _bind_since(self, moment: datetime) -> Any:
        # The bound value is compared by the source itself: naive in the source's zone,
        # and as ISO text for SQLite, which keeps timestamps as text.
        local = moment.astimezone(self.source.timezone).replace(tzinfo=None, microsecond=0)
        if self.source_engine.dialect.name == "sqlite":
            return local.strftime("%Y-%m-%d %H:%M:%S")
        return local

    def _watermark(self, entity: str) -> datetime | None:
        marks = schema.watermarks
        with self.store.connect() as connection:
            value: datetime | None = connection.scalar(
                select(marks.c.updated_at).where(
                    marks.c.source == self.source.name, marks.c.entity == entity
                )
            )
        return value


def _keys_at_end(
    raw_batch: Sequence[Sequence[Any]],
    updated_at: int,
    key: int,
    before: set[Any],
    continued: bool,
) -> set[Any]:
    """The raw keys of the rows at the end of the read that share its newest updated_at:
    those at the end of this batch, and `before` too when the whole batch shares the
    time the previous batch ended with (`continued`)."""
    last = raw_batch[-1][updated_at]
    keys: set[Any] = set()
    for raw in reversed(raw_batch):
        if raw[updated_at] != last:
            return keys
        keys.add(raw[key])
    return keys | before if continued else keys


def ensure_source_state(connection: Connection, source: str) -> None:
    state = schema.source_state
    exists = connection.scalar(select(state.c.source).where(state.c.source == source))
    if exists is None:
        connection.execute(
            state.insert().values(
                source=source, poll_seq=0, evaluated_seq=0, consecutive_failures=0
            )
        )
