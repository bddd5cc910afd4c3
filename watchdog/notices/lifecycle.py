"""The rectification lifecycle: states, legal transitions, and their events.

    issued → delivered → acknowledged → rectified → closed
    issued | delivered | acknowledged → escalated   (督办: deadline passed, by the daemon)
    escalated → rectified                           (the department replies after all)
    rectified | closed → acknowledged               (reopen: the rectification fell short)

Every transition is one conditional UPDATE (`WHERE state IN (<allowed from>)`) and one
`notice_events` row with who and when (and its audit entry), in the caller's
transaction. The conditional update is what makes two actors racing on one notice safe:
the second one's update matches no row and it gets a `NoticeStateError` naming the
state it found.

For the delivery side: `mark_delivered(connection, notice_id, at)` moves a notice from
issued to delivered once all its deliveries are sent, and is a no-op (returns False)
for a notice already past issued (acknowledged before the last copy went out, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from watchdog.audit.hooks import record_notice_event
from watchdog.notices.issuing import ACTOR
from watchdog.store import schema

STATES = ("issued", "delivered", "acknowledged", "rectified", "closed", "escalated")


@dataclass(frozen=True)
class Transition:
    action: str  # the verb, as the CLI names it
    event: str  # the notice_events.event written
    sources: frozenset[str]
    target: str


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        Transition("deliver", "delivered", frozenset({"issued"}), "delivered"),
        Transition("ack", "acknowledged", frozenset({"issued", "delivered"}), "acknowledged"),
        Transition("rectify", "rectified", frozenset({"acknowledged", "escalated"}), "rectified"),
        Transition("close", "closed", frozenset({"rectified"}), "closed"),
        Transition("reopen", "reopened", frozenset({"rectified", "closed"}), "acknowledged"),
        Transition(
            "escalate",
            "escalated",
            frozenset({"issued", "delivered", "acknowledged"}),
            "escalated",
        ),
    )
}
ESCALATABLE = TRANSITIONS["escalate"].sources


class NoticeError(Exception):
    """A notice that cannot be found or cannot make the asked transition."""


class NoticeNotFound(NoticeError):
    pass


class NoticeStateError(NoticeError):
    """An illegal transition; the message names the notice, its state and the action."""


def find_notice(connection: Connection, number: str) -> Row[Any]:
    table = schema.notices
    row = connection.execute(select(table).where(table.c.number == number)).one_or_none()
    if row is None:
        raise NoticeNotFound(f"notice {number} not found")
    return row


def transition(
    connection: Connection,
    notice_id: int,
    action: str,
    *,
    by: str,
    at: datetime,
    detail: str | None = None,
    values: dict[str, Any] | None = None,
) -> str:
    """Apply `action` to a notice; return the state it left. Raises NoticeStateError
    when the notice's state does not allow it."""
    step = TRANSITIONS[action]
    table = schema.notices
    current = connection.execute(
        select(table.c.number, table.c.state).where(table.c.id == notice_id)
    ).one_or_none()
    if current is None:
        raise NoticeNotFound(f"notice id {notice_id} not found")
    updated = connection.execute(
        update(table)
        .where(table.c.id == notice_id, table.c.state.in_(sorted(step.sources)))
        .values(state=step.target, updated_at=at, **(values or {}))
    )
    if updated.rowcount != 1:
        # Read again: a concurrent transition may have changed it since the first read.
        state = connection.execute(
            select(table.c.state).where(table.c.id == notice_id)
        ).scalar_one()
        raise NoticeStateError(
            f"notice {current.number} is {state}: cannot {action} it "
            f"(only from {', '.join(s for s in STATES if s in step.sources)})"
        )
    record_notice_event(
        connection,
        notice_id=notice_id,
        number=current.number,
        event=step.event,
        state_from=current.state,
        state_to=step.target,
        at=at,
        actor=by,
        detail=detail,
    )
    return str(current.state)


def mark_delivered(connection: Connection, notice_id: int, at: datetime) -> bool:
    """Issued → delivered, with its event, once every delivery of the notice is sent.

    Called by the delivery side in its own transaction. A no-op returning False when the
    notice is already past issued (acknowledged, escalated, ...): delivery then adds
    nothing to its lifecycle. Returns True when the notice moved to delivered.
    """
    try:
        transition(connection, notice_id, "deliver", by=ACTOR, at=at, detail="all copies sent")
    except NoticeStateError:
        return False
    return True


def acknowledge(connection: Connection, number: str, *, by: str, at: datetime) -> str:
    notice = find_notice(connection, number)
    return transition(connection, notice.id, "ack", by=by, at=at)


def rectify(connection: Connection, number: str, *, reply: str, by: str, at: datetime) -> str:
    if not reply.strip():
        raise NoticeStateError(f"notice {number}: the rectification reply is empty")
    notice = find_notice(connection, number)
    return transition(
        connection, notice.id, "rectify", by=by, at=at, detail=reply, values={"reply": reply}
    )


def close(connection: Connection, number: str, *, by: str, at: datetime) -> str:
    notice = find_notice(connection, number)
    return transition(connection, notice.id, "close", by=by, at=at)


def reopen(
    connection: Connection, number: str, *, by: str, at: datetime, reason: str | None = None
) -> str:
    notice = find_notice(connection, number)
    return transition(connection, notice.id, "reopen", by=by, at=at, detail=reason)
