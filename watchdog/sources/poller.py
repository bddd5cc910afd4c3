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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from watchdog.config import SourceSettings
from watchdog.sources.entities import ENTITIES, Entity, RowValidator, content_hash
from watchdog.store import schema
from watchdog.store.upsert import upsert_changed

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


def wrap_query(query: str, *, incremental: bool) -> str:
    condition = " WHERE q.updated_at >= :since" if incremental else ""
    return f"SELECT * FROM ({query}) AS q{condition} ORDER BY q.updated_at"


def first_line(exc: BaseException) -> str:
    """The first line of an error, without SQLAlchemy's background link."""
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return message[0] if message else type(exc).__name__


class SourcePoller:
    """Polls one source into the store; one instance per source, reused across cycles."""

    def __init__(
        self, source: SourceSettings, source_engine: Engine, store: Engine, clock: Clock = utc_now
    ) -> None:
        self.source = source
        self.source_engine = source_engine
        self.store = store
        self.clock = clock

    def poll(self) -> PollResult:
        """Read every entity's new rows; raise SourceError if the source fails."""
        started = time.monotonic()
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
        outcome = EntityPoll(entity.name)
        watermark = self._watermark(entity.name)
        params: dict[str, Any] = {}
        if watermark is not None:
            params["since"] = self._bind_since(watermark - self.source.overlap)
        sql = text(wrap_query(query, incremental=watermark is not None))
        validator = RowValidator(entity, self.source.timezone)
        where = f'source "{self.source.name}": {entity.name} query'
        try:
            with self.source_engine.connect() as source_connection:
                rows = source_connection.execution_options(
                    yield_per=self.source.batch_size
                ).execute(sql, params)
                self._check_columns(entity, list(rows.keys()), where)
                for batch in rows.mappings().partitions():
                    self._store_batch(entity, validator, batch, seq, outcome)
        except SQLAlchemyError as exc:
            raise SourceError(f"{where} failed: {first_line(exc)}") from exc
        with self.store.connect() as connection:
            table = schema.ENTITY_TABLES[entity.name]
            outcome.rows_changed = int(
                connection.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.source == self.source.name, table.c.change_seq == seq)
                )
                or 0
            )
        return outcome

    def _check_columns(self, entity: Entity, columns: list[str], where: str) -> None:
        present = {column.lower() for column in columns}
        missing = [c for c in entity.column_names if c not in present]
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

    def _store_batch(
        self,
        entity: Entity,
        validator: RowValidator,
        batch: Sequence[RowMapping],
        seq: int,
        outcome: EntityPoll,
    ) -> None:
        good: list[dict[str, Any]] = []
        bad: list[tuple[dict[str, Any], str]] = []
        for raw in batch:
            row = {key.lower(): value for key, value in raw.items()}
            checked = validator.validate(row)
            if isinstance(checked, str):
                bad.append((row, checked))
                continue
            values = checked.values
            values["source"] = self.source.name
            values["row_hash"] = checked.row_hash
            values["change_seq"] = seq
            good.append(values)
        newest = max((row["updated_at"] for row in good), default=None)
        now = self.clock()
        with self.store.begin() as connection:
            table = schema.ENTITY_TABLES[entity.name]
            upsert_changed(connection, table, good, key=["source", entity.key])
            self._quarantine(connection, entity, bad, now)
            if newest is not None:
                self._advance_watermark(connection, entity.name, newest, len(batch), now)
        outcome.rows_read += len(batch)
        outcome.rows_quarantined += len(bad)
        if newest is not None and (outcome.watermark is None or newest > outcome.watermark):
            outcome.watermark = newest
        for row, reason in bad:
            log.warning(
                'source "%s": %s row %s quarantined: %s',
                self.source.name,
                entity.name,
                row.get(entity.key),
                reason,
            )

    def _quarantine(
        self,
        connection: Connection,
        entity: Entity,
        bad: list[tuple[dict[str, Any], str]],
        now: datetime,
    ) -> None:
        if not bad:
            return
        table = schema.quarantine
        for row, reason in bad:
            shown = {k: None if v is None else str(v) for k, v in row.items()}
            digest = content_hash({"reason": reason, **shown})
            existing = connection.execute(
                select(table.c.id).where(
                    table.c.source == self.source.name,
                    table.c.entity == entity.name,
                    table.c.row_hash == digest,
                )
            ).first()
            if existing is not None:
                connection.execute(
                    update(table)
                    .where(table.c.id == existing.id)
                    .values(last_seen_at=now, times_seen=table.c.times_seen + 1)
                )
                continue
            key = row.get(entity.key)
            connection.execute(
                table.insert().values(
                    source=self.source.name,
                    entity=entity.name,
                    row_key=None if key is None else str(key)[:128],
                    reason=reason,
                    row=shown,
                    row_hash=digest,
                    first_seen_at=now,
                    last_seen_at=now,
                    times_seen=1,
                )
            )

    def _advance_watermark(
        self, connection: Connection, entity: str, newest: datetime, rows: int, now: datetime
    ) -> None:
        marks = schema.watermarks
        key = (marks.c.source == self.source.name) & (marks.c.entity == entity)
        current = connection.scalar(select(marks.c.updated_at).where(key))
        if current is None:
            connection.execute(
                marks.insert().values(
                    source=self.source.name,
                    entity=entity,
                    updated_at=newest,
                    rows_read=rows,
                    advanced_at=now,
                )
            )
            return
        # Never move backwards: a batch of re-read overlap rows is older than the mark.
        connection.execute(
            update(marks)
            .where(key)
            .values(
                updated_at=newest if newest > current else current,
                rows_read=marks.c.rows_read + rows,
                advanced_at=now,
            )
        )


def ensure_source_state(connection: Connection, source: str) -> None:
    state = schema.source_state
    exists = connection.scalar(select(state.c.source).where(state.c.source == source))
    if exists is None:
        connection.execute(
            state.insert().values(
                source=source, poll_seq=0, evaluated_seq=0, consecutive_failures=0
            )
        )
