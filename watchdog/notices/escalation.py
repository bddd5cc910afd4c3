"""Escalation (督办): a notice not rectified by its deadline goes to the next level.

A rectification notice still issued, delivered or acknowledged is escalated on the
first working day after its deadline (the deadline day itself is the department's,
whole; weekends and holidays after it do not count, so a deadline on 2026-09-30 is
escalated on 2026-10-08, after the National Day holiday). Escalating, in one
transaction per notice:

1. the original moves to `escalated` (a conditional update: a second daemon racing on
   the same notice finds it escalated already and leaves it), with its event;
2. an escalation notice (kind `escalation`, `refers_to_id` the original) is issued to
   the department's next level (`[notices.escalation]`, else `leadership`), with the
   supervision office in copy, about the original's violations;
3. each of those violations gets an `escalated` violation event, so its record shows
   that its notice was escalated and under which number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select

from watchdog.audit.hooks import audit_violation_events
from watchdog.notices.issuing import ACTOR, RECTIFICATION, NoticeIssuer, load_violations
from watchdog.notices.lifecycle import ESCALATABLE, NoticeStateError, transition
from watchdog.store import schema

log = logging.getLogger(__name__)


@dataclass
class EscalationResult:
    escalated: list[str] = field(default_factory=list)  # numbers of the originals
    errors: list[str] = field(default_factory=list)


def escalation_day(issuer: NoticeIssuer, deadline: date) -> date:
    """The working day after the deadline: the first day a notice can be escalated."""
    return issuer.calendar.nth_workday_after(deadline, 1)


def escalate_overdue(store: Engine, issuer: NoticeIssuer, now: datetime) -> EscalationResult:
    """Escalate every rectification notice whose escalation day has come.

    A notice that fails is logged and reported, and the others still escalate.
    """
    notices = schema.notices
    today = now.astimezone(issuer.settings.timezone).date()
    result = EscalationResult()
    with store.connect() as connection:
        candidates = connection.execute(
            select(notices.c.id, notices.c.number, notices.c.deadline)
            .where(
                notices.c.kind == RECTIFICATION,
                notices.c.state.in_(sorted(ESCALATABLE)),
                notices.c.escalated_at.is_(None),
                notices.c.deadline < today,
            )
            .order_by(notices.c.id)
        ).all()
    for candidate in candidates:
        if today < escalation_day(issuer, candidate.deadline):
            continue
        try:
            with store.begin() as connection:
                escalate_notice(connection, issuer, candidate.id, now)
            result.escalated.append(candidate.number)
        except NoticeStateError:
            continue  # another daemon (or an officer) changed it since it was read
        except Exception as exc:  # one notice must not stop the others
            log.exception("notice %s: escalation failed", candidate.number)
            result.errors.append(f"notice {candidate.number}: {type(exc).__name__}: {exc}")
    return result


def escalate_notice(
    connection: Connection, issuer: NoticeIssuer, notice_id: int, at: datetime
) -> str:
    """Escalate one notice (steps 1-3 of the module docstring) in the caller's
    transaction; return the escalation notice's number. Raises NoticeStateError when the
    notice's state no longer allows it: the caller must then roll back, which also
    returns the number drawn for the escalation notice."""
    notices = schema.notices
    original: Row[Any] = connection.execute(select(notices).where(notices.c.id == notice_id)).one()
    deadline = original.deadline.isoformat() if original.deadline else "none"
    links = schema.notice_violations
    ids = list(
        connection.execute(
            select(links.c.violation_id).where(links.c.notice_id == notice_id)
        ).scalars()
    )
    violations = load_violations(connection, ids)
    escalation_id, number = issuer.issue_escalation(connection, original, violations, at=at)
    transition(
        connection,
        notice_id,
        "escalate",
        by=ACTOR,
        at=at,
        detail=f"not rectified by the deadline {deadline}; escalated as {number}",
        values={"escalated_at": at},
    )
    if violations:
        events = [
            {
                "violation_id": row.id,
                "event": "escalated",
                "severity_from": row.severity,
                "severity_to": row.severity,
                "at": at,
                "recorded_at": at,
                "reason": (
                    f"notice {original.number} not rectified by {deadline}: "
                    f"escalated (督办) as notice {number}"
                ),
            }
            for row in violations
        ]
        connection.execute(insert(schema.violation_events), events)
        audit_violation_events(connection, events)
    log.warning(
        "notice %s not rectified by %s: escalated as %s (notice id %d)",
        original.number,
        deadline,
        number,
        escalation_id,
    )
    return number
