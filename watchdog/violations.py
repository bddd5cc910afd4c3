"""Findings → violations: one violation per fingerprint, opened, upgraded, resolved.

A violation is the lasting record of a breach. Its severity only goes up (warning →
yellow → red); each change is a violation event stamped with the evaluation instant,
and nothing is ever deleted, so an auditor can replay what was known when.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Row, insert, select, update

from watchdog.clock import Severity
from watchdog.engine.findings import Finding
from watchdog.store import schema

OPEN = "open"
RESOLVED = "resolved"
_RANK = {s.value: rank for rank, s in enumerate(Severity, start=1)}


@dataclass
class ReconcileCounts:
    opened: int = 0
    upgraded: int = 0
    resolved: int = 0
    reopened: int = 0

    def add(self, other: ReconcileCounts) -> None:
        self.opened += other.opened
        self.upgraded += other.upgraded
        self.resolved += other.resolved
        self.reopened += other.reopened


@dataclass(frozen=True)
class ViolationChange:
    """One violation event, as told to a listener in the transaction that records it.

    `finding` is what was found (None for `resolved`); `severity_from` is None for
    `opened` and `reopened`.
    """

    violation_id: int
    event: str  # opened | upgraded | reopened | resolved
    severity_from: str | None
    severity_to: str | None
    finding: Finding | None
    at: datetime


class ViolationListener(Protocol):
    """Called by `reconcile` with the changes it made, on its connection and inside its
    transaction, so what the listener writes (notices, the outbox) commits or rolls
    back with the violations. Raising rolls the whole chunk back."""

    def __call__(self, connection: Connection, changes: Sequence[ViolationChange]) -> None: ...


@dataclass(frozen=True)
class Scope:
    """What one evaluation pass looked at: a rule, a source and the cases (or, for
    inspections, the enterprises) it checked — their scope keys.

    Only violations inside the scope can be resolved by the pass; a case that was not
    looked at keeps its violations as they are.
    """

    rule_id: str
    source: str
    keys: Sequence[str]


def reconcile(
    connection: Connection,
    scope: Scope,
    findings: Iterable[Finding],
    *,
    at: datetime,
    now: datetime,
    notes: Mapping[str, str] | None = None,
    listener: ViolationListener | None = None,
) -> ReconcileCounts:
    """Bring the stored violations of `scope` in line with `findings` found at `at`.

    1. Load the scope's stored violations by fingerprint.
    2. A new fingerprint opens a violation; a resolved one that is found again reopens.
    3. A finding graver than the stored severity upgrades it; a milder one changes
       only the evidence (a grade once reached stays).
    4. An open violation in the scope without a finding is resolved, with the reason
       the rule gave for the case (`notes`) when there is one.
    5. The listener, if any, hears every change made, in this transaction.
    """
    counts = ReconcileCounts()
    changes: list[ViolationChange] = []
    table = schema.violations
    stored = _load(connection, scope)
    found: set[str] = set()
    for finding in findings:
        fingerprint = finding.fingerprint
        found.add(fingerprint)
        row = stored.get(fingerprint)
        severity = finding.severity.value
        if row is None:
            violation_id = _open(connection, finding, at, now)
            changes.append(ViolationChange(violation_id, "opened", None, severity, finding, at))
            counts.opened += 1
        elif row.state == RESOLVED:
            _change(connection, row, finding, "reopened", severity, at, now)
            changes.append(ViolationChange(row.id, "reopened", None, severity, finding, at))
            counts.reopened += 1
        elif _RANK[severity] > _RANK[row.severity]:
            _change(connection, row, finding, "upgraded", severity, at, now)
            changes.append(ViolationChange(row.id, "upgraded", row.severity, severity, finding, at))
            counts.upgraded += 1
        else:
            connection.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(last_seen_at=at, evidence=dict(finding.evidence))
            )
    for fingerprint, row in stored.items():
        if row.state == OPEN and fingerprint not in found:
            reason = (notes or {}).get(row.scope_key, "no longer found")
            _resolve(connection, row, reason, at, now)
            changes.append(ViolationChange(row.id, "resolved", row.severity, None, None, at))
            counts.resolved += 1
    if listener is not None and changes:
        listener(connection, changes)
    return counts


def _load(connection: Connection, scope: Scope) -> dict[str, Row[Any]]:
    table = schema.violations
    rows: dict[str, Row[Any]] = {}
    ids = list(scope.keys)
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        query = select(table).where(
            table.c.rule_id == scope.rule_id,
            table.c.source == scope.source,
            table.c.scope_key.in_(chunk),
        )
        for row in connection.execute(query):
            rows[row.fingerprint] = row
    return rows


def _open(connection: Connection, finding: Finding, at: datetime, now: datetime) -> int:
    table = schema.violations
    inserted = connection.execute(
        insert(table).values(
            fingerprint=finding.fingerprint,
            rule_id=finding.rule_id,
            kind=finding.kind,
            finding=finding.finding,
            source=finding.source,
            case_id=finding.case_id,
            scope_key=finding.scope_key,
            subject=finding.subject,
            dept_code=finding.dept_code,
            severity=finding.severity.value,
            state=OPEN,
            opened_at=at,
            last_seen_at=at,
            due_date=finding.due_date,
            provisional=finding.provisional,
            evidence=dict(finding.evidence),
        )
    ).inserted_primary_key
    assert inserted is not None
    violation_id: int = inserted[0]
    _event(connection, violation_id, "opened", None, finding.severity.value, at, now, finding)
    return violation_id


def _change(
    connection: Connection,
    row: Row[Any],
    finding: Finding,
    event: str,
    severity: str,
    at: datetime,
    now: datetime,
) -> None:
    table = schema.violations
    connection.execute(
        update(table)
        .where(table.c.id == row.id)
        .values(
            severity=severity,
            state=OPEN,
            resolved_at=None,
            last_seen_at=at,
            due_date=finding.due_date,
            provisional=finding.provisional,
            evidence=dict(finding.evidence),
        )
    )
    before = None if event == "reopened" else row.severity
    _event(connection, row.id, event, before, severity, at, now, finding)


def _resolve(
    connection: Connection, row: Row[Any], reason: str, at: datetime, now: datetime
) -> None:
    table = schema.violations
    connection.execute(
        update(table).where(table.c.id == row.id).values(state=RESOLVED, resolved_at=at)
    )
    connection.execute(
        insert(schema.violation_events).values(
            violation_id=row.id,
            event="resolved",
            severity_from=row.severity,
            severity_to=None,
            at=at,
            recorded_at=now,
            reason=reason,
        )
    )


def _event(
    connection: Connection,
    violation_id: int,
    event: str,
    severity_from: str | None,
    severity_to: str,
    at: datetime,
    now: datetime,
    finding: Finding,
) -> None:
    connection.execute(
        insert(schema.violation_events).values(
            violation_id=violation_id,
            event=event,
            severity_from=severity_from,
            severity_to=severity_to,
            at=at,
            recorded_at=now,
            evidence=dict(finding.evidence),
        )
    )
