"""Source revisions: a deciding field of a stored row that the source changed later.

A supervised department can hide a breach by editing its own data: moving 受理时间
later makes an overdue case look on time. The poller therefore keeps, for rows it
already stored, the old and new value of every field a deadline or finding rests on
(`DECIDING`), in the transaction that stores the new value.

Cost: one SELECT of the batch's existing rows by key (only the deciding columns), a
comparison in Python, and an INSERT only for rows that really changed such a field. A
first load into an empty table has nothing to compare and skips all of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, text

from watchdog.sources.entities import Entity
from watchdog.store import schema
from watchdog.store.encoding import StoreEncoding

# The fields whose change may decide a deadline or a finding, per entity.
DECIDING: Mapping[str, tuple[str, ...]] = {
    "cases": (
        "matter_code",
        "applied_at",
        "accepted_at",
        "promised_limit",
        "statutory_limit",
        "limit_unit",
        "completed_at",
    ),
    "steps": ("step_code", "handler_id", "finished_at"),
    "pauses": ("kind", "started_at", "ended_at", "granted_days"),
    "fees": ("fee_code", "amount", "charged_at"),
    "inspections": ("target_id", "inspected_at", "kind", "joint_group"),
    "reviews": ("received_at", "rating", "replied_at"),
}

# Fields that are empty until something happens: filling one in is the case moving on,
# not an alteration. Changing or emptying a value once given is one.
PROGRESS = frozenset({"accepted_at", "completed_at", "finished_at", "ended_at", "replied_at"})

# The column that says which case (or, for inspections, which enterprise) a row is of.
SCOPE_COLUMN: Mapping[str, str] = {
    "cases": "case_id",
    "steps": "case_id",
    "pauses": "case_id",
    "fees": "case_id",
    "inspections": "target_id",
    "reviews": "case_id",
}

_CENTS = Decimal("0.01")


class RevisionCapture:
    """Compares one entity's batches with the stored rows and records the revisions.

    Rows come in the writer's column order: source, key, canonical fields, updated_at,
    change_seq (the poll).
    """

    def __init__(
        self, dialect: str, source: str, entity: Entity, encoding: StoreEncoding, now: datetime
    ) -> None:
        self.source = source
        self.entity = entity
        self.encoding = encoding
        self.now = now
        self.fields = DECIDING.get(entity.name, ())
        columns = ("source", *entity.column_names, "change_seq")
        self.positions = [columns.index(name) for name in self.fields]
        self.kinds = {f.name: f.kind for f in entity.fields}
        scope = SCOPE_COLUMN.get(entity.name, entity.key)
        case = "case_id" if "case_id" in columns else "NULL"
        selected_names = (entity.key, scope, case, *self.fields)
        selected = ", ".join(selected_names)
        table = schema.ENTITY_TABLES[entity.name].name
        # One bound value for all the batch's keys: a JSON array, or a PostgreSQL array.
        self.json_batch = dialect == "sqlite"
        if self.json_batch:
            # And one value back: the driver takes the GIL again for every row it
            # returns, which stalls the writer behind the busy reading thread (measured:
            # 3x slower than the same rows as one JSON text).
            # CROSS JOIN fixes the order: each key looked up by the primary key. With
            # `key IN (SELECT … json_each)` and no statistics, SQLite preferred scanning
            # the covering index of steps by case (0.4 s a batch at 1M cases, against
            # 2 ms).
            picked = ", ".join(f"t.{name}" if name != "NULL" else name for name in selected_names)
            self.query = text(
                f"SELECT json_group_array(json_array({picked})) "
                f"FROM json_each(:keys) AS k CROSS JOIN {table} AS t "
                f"WHERE t.source = :source AND t.{entity.key} = k.value"
            )
        else:
            self.query = text(
                f"SELECT {selected} FROM {table} "
                f"WHERE source = :source AND {entity.key} = ANY(:keys)"
            )
        self.recorded = 0

    def _stored(self, connection: Connection, keys: list[Any]) -> dict[Any, Sequence[Any]]:
        """The stored rows of these keys: key, scope, case_id, deciding fields, by key."""
        if self.json_batch:
            bound = {"source": self.source, "keys": json.dumps(keys, ensure_ascii=False)}
            found = json.loads(connection.execute(self.query, bound).scalar() or "[]")
        else:
            found = connection.execute(self.query, {"source": self.source, "keys": keys}).all()
        return {row[0]: row for row in found}

    def record(self, connection: Connection, rows: Sequence[Sequence[Any]]) -> int:
        """Record the revisions `rows` make to stored rows; before they are upserted."""
        if not self.fields or not rows:
            return 0
        stored = self._stored(connection, [row[1] for row in rows])
        if not stored:
            return 0
        revisions = []
        positions = self.positions
        for row in rows:
            old = stored.get(row[1])
            if old is None:
                continue
            values = old[3:]
            if all(values[i] == row[p] for i, p in enumerate(positions)):
                continue  # the common case: re-read, or changed elsewhere
            for index, (name, position) in enumerate(zip(self.fields, positions, strict=True)):
                before, after = values[index], row[position]
                if before == after or (before is None and name in PROGRESS):
                    continue
                old_text, new_text = self._text(name, before), self._text(name, after)
                if old_text == new_text:
                    continue  # the same value in another form (80.0 and 80.00)
                revisions.append(
                    {
                        "source": self.source,
                        "entity": self.entity.name,
                        "row_key": row[1],
                        "case_id": old[2],
                        "scope_key": old[1],  # the case or enterprise the old row was of
                        "field": name,
                        "old_value": old_text,
                        "new_value": new_text,
                        "seen_at": self.now,
                        "poll": row[-1],
                    }
                )
        if revisions:
            connection.execute(insert(schema.source_revisions), revisions)
            self.recorded += len(revisions)
        return len(revisions)

    def _text(self, name: str, value: Any) -> str | None:
        """A value as stored in a revision: times as ISO UTC, amounts with two places."""
        if value is None:
            return None
        kind = self.kinds.get(name)
        if kind == "timestamp":
            moment = value if isinstance(value, datetime) else self.encoding.read_timestamp(value)
            return moment.astimezone(UTC).isoformat()
        if kind == "decimal":
            return str(Decimal(str(value)).quantize(_CENTS))
        return str(value)
