"""The hash chain: canonical entries, their hashes, and appending in the caller's transaction.

The recipe (README "Audit trail" repeats it for outside verifiers):

    body      = the entry without prev_hash and hash:
                {seq, at, recorded_at, actor, entity, entity_id, action, payload}
                with both instants written "YYYY-MM-DDTHH:MM:SS.ffffffZ" in UTC
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, allow_nan=False)
    hash      = sha256(UTF-8(prev_hash + canonical)).hexdigest()

`prev_hash` is the hash of the entry with the previous seq, or 64 zeros for seq 1.
Because seq is in the body, renumbering entries changes their hashes too.

Appends are serialized so the chain never forks: on PostgreSQL by a transaction-level
advisory lock (it needs no privilege on the table, so the daemon's role may be denied
UPDATE and DELETE on audit_log), on SQLite by the database's single writer. The
caller's transaction has normally written already (the violations, the notice), so on
SQLite it holds the write lock when the head is read; `append` makes sure of it
otherwise. The primary key on seq is the last guard: a second appender that read the
same head would fail on insert, never fork.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import JSON, Connection, Insert, Text, bindparam, cast, insert, select, text

from watchdog.store import schema
from watchdog.store.copy import insert_rows

GENESIS = "0" * 64
DAEMON = "watchdog"  # the actor of what the daemon does by itself
# pg_advisory_xact_lock key: "wdaudit" in ASCII, fixed so every daemon takes the same one.
_PG_LOCK_KEY = 0x77646175646974
_FIELDS = ("seq", "at", "recorded_at", "actor", "entity", "entity_id", "action", "payload")


@dataclass(frozen=True)
class Entry:
    """What a caller appends; seq, recorded_at and the hashes are filled in by `append`."""

    at: datetime
    actor: str
    entity: str  # violation | notice | ruleset
    entity_id: str
    action: str
    payload: Mapping[str, Any]


def instant(moment: datetime) -> str:
    """The canonical text of an instant: UTC, microseconds, a Z."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} in an audit entry: zone unknown")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(body: Mapping[str, Any]) -> str:
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    """The hash of an entry whose body (instants already canonical text) is `body`."""
    return hashlib.sha256((prev_hash + canonical(body)).encode("utf-8")).hexdigest()


def body_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed part of a stored row or exported record, instants as canonical text."""
    body = {name: record[name] for name in _FIELDS}
    for name in ("at", "recorded_at"):
        if isinstance(body[name], datetime):
            body[name] = instant(body[name])
    return body


def lock_chain(connection: Connection) -> None:
    """Take the chain's append lock until the caller's transaction ends.

    Taking it before other locks a transaction will want (the notice counter, say)
    keeps the lock order the same everywhere, so two daemons cannot deadlock on it.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    else:
        # SQLite: a transaction that has only read so far may hold an old snapshot; an
        # empty write takes the database's write lock before the head is read (pysqlite
        # issues BEGIN before it). Free when the transaction holds the lock already.
        connection.execute(text("UPDATE audit_log SET seq = seq WHERE 0"))


def head(connection: Connection) -> tuple[int, str]:
    """The last entry's seq and hash; (0, GENESIS) for an empty chain."""
    table = schema.audit_log
    row = connection.execute(
        select(table.c.seq, table.c.hash).order_by(table.c.seq.desc()).limit(1)
    ).one_or_none()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))


def append(
    connection: Connection, entries: Sequence[Entry], *, recorded_at: datetime | None = None
) -> int:
    """Append entries in order, in the caller's transaction, as one executemany (one
    COPY for many entries on PostgreSQL, the payload's canonical text stored as it is).

    Returns the seq of the last entry appended (0 when there was nothing to append).
    """
    if not entries:
        return 0
    lock_chain(connection)
    seq, prev_hash = head(connection)
    rows = chain_rows(entries, seq, prev_hash, recorded_at or datetime.now(UTC))
    insert_rows(
        connection,
        schema.audit_log,
        rows,
        statement=_insert(connection.dialect.name),
        verbatim=("payload",),
    )
    return seq + len(rows)


def chain_rows(
    entries: Sequence[Entry], seq: int, prev_hash: str, recorded_at: datetime
) -> list[dict[str, Any]]:
    """The rows of entries following entry `seq` whose hash is `prev_hash`.

    Hashes are computed one after the other: each needs the one before. A full
    evaluation appends hundreds of thousands of entries and the cost is mostly
    serializing payloads (evidence), so each payload is serialized once: its canonical
    text is both spliced into the hashed body and stored as is.
    """
    recorded_moment = recorded_at.astimezone(UTC)
    recorded = _text(instant(recorded_moment))
    rows: list[dict[str, Any]] = []
    for entry in entries:
        seq += 1
        payload = canonical(entry.payload)
        # canonical(body), keys in sorted order, written out: equal by construction
        # (tests/test_audit.py re-hashes exports with plain json.dumps).
        body = (
            f'{{"action":{_text(entry.action)},"actor":{_text(entry.actor)},'
            f'"at":{_text(instant(entry.at))},"entity":{_text(entry.entity)},'
            f'"entity_id":{_text(entry.entity_id)},"payload":{payload},'
            f'"recorded_at":{recorded},"seq":{seq}}}'
        )
        digest = hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()
        rows.append(
            {
                "seq": seq,
                "at": entry.at,
                "recorded_at": recorded_moment,
                "actor": entry.actor,
                "entity": entry.entity,
                "entity_id": entry.entity_id,
                "action": entry.action,
                "payload": payload,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    return rows


def _text(value: str) -> str:
    """A JSON string as json.dumps(value, ensure_ascii=False) writes it (its C encoder)."""
    return encode_basestring(value)


def _insert(dialect: str) -> Insert:
    """INSERT taking the payload as JSON text already serialized (not serialized again)."""
    table = schema.audit_log
    values: dict[str, Any] = {column.key: bindparam(column.key) for column in table.c}
    raw = bindparam("payload", type_=Text())
    # PostgreSQL wants a json value, SQLite stores the text (its JSON type is TEXT).
    values["payload"] = cast(raw, JSON) if dialect == "postgresql" else raw
    return insert(table).values(values)
