"""Findings → violations: one violation per fingerprint, opened, upgraded, resolved.

A violation is the lasting record of a breach. Its severity only goes up (warning →
yellow → red); each change is a violation event stamped with the evaluation instant,
and nothing is ever deleted, so an auditor can replay what was known when. A violation
that would resolve or turn milder only because the source changed a deciding field
since it was recorded stays open, contested by that revision (`engine.contest`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from watchdog.clock import Severity
from watchdog.engine.contest import altering_revisions, contest_reason
from watchdog.engine.findings import Finding
from watchdog.store import schema
from watchdog.store.copy import insert_rows, next_ids, update_rows, uses_copy
from watchdog.store.keys import among_keys

OPEN = "open"
RESOLVED = "resolved"
_RANK = {s.value: rank for rank, s in enumerate(Severity, start=1)}


@dataclass
class ReconcileCounts:
    opened: int = 0
    upgraded: int = 0
    resolved: int = 0
    reopened: int = 0
    contested: int = 0

    def add(self, other: ReconcileCounts) -> None:
        self.opened += other.opened
        self.upgraded += other.upgraded
        self.resolved += other.resolved
        self.reopened += other.reopened
        self.contested += other.contested


@dataclass(frozen=True)
class ViolationChange:
    """One violation event, as told to a listener in the transaction that records it.

    `finding` is what was found (None for `resolved`, and for `contested` when nothing
    was found); `severity_from` is None for `opened` and `reopened`.
    """

    violation_id: int
    event: str  # opened | upgraded | reopened | resolved | contested
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
    # The first and last key as the store orders them, when the keys are every case of
    # the source in that range (a chunk of a full pass, read in case-id order): the
    # stored violations are then read by one range scan instead of lists of keys.
    span: tuple[str, str] | None = None


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
    3. A finding graver than the stored severity upgrades it; the same grade or a
       milder one changes only the evidence, due date and provisional mark (a grade
       once reached stays).
    4. An open violation in the scope without a finding is resolved, with the reason
       the rule gave for the case (`notes`) when there is one.
    5. Unless the source changed a field the verdict rests on since the last
       evaluation: a violation that 3 would find milder or 4 would resolve is instead
       marked contested by that revision and stays open (event `contested`); a
       contested violation is never resolved, and keeps its evidence when found milder.
       Only these few rows cost a query (of their revisions).
    6. The listener, if any, hears every change made, in this transaction.

    Steps 2-4 decide first and then write in batches (one statement per kind of write,
    each an executemany; many rows inserted on PostgreSQL by COPY, `store.copy`): a
    full evaluation opens hundreds of thousands of violations, and a statement per row
    cost more than all the rules together. Rows and events are written in the order
    the changes are listed, as one statement per row would.
    """
    counts = ReconcileCounts()
    stored = _load(connection, scope)
    found: set[str] = set()
    opened: list[Finding] = []
    changed: list[tuple[Row[Any], Finding, str, str]] = []  # row, finding, event, severity
    seen: list[dict[str, Any]] = []  # evidence-only updates
    # Found again with nothing to change but the time (the same evidence, or contested
    # and so kept): one statement for all, not a row each.
    touched: list[int] = []
    milder: list[tuple[Row[Any], Finding]] = []  # uncontested, found milder
    # The changes in the order a row-by-row pass makes them; an opened violation's id
    # is known once it is inserted, so it is filled in then (index into `opened`).
    order: list[tuple[str, int]] = []
    for finding in findings:
        fingerprint = finding.fingerprint
        found.add(fingerprint)
        row = stored.get(fingerprint)
        severity = finding.severity.value
        if row is None:
            order.append(("opened", len(opened)))
            opened.append(finding)
            counts.opened += 1
        elif row.state == RESOLVED:
            order.append(("changed", len(changed)))
            changed.append((row, finding, "reopened", severity))
            counts.reopened += 1
        elif _RANK[severity] > _RANK[row.severity]:
            order.append(("changed", len(changed)))
            changed.append((row, finding, "upgraded", severity))
            counts.upgraded += 1
        elif _RANK[severity] == _RANK[row.severity]:
            if _unchanged(row, finding):
                touched.append(row.id)
            else:
                seen.append(_seen_again(row, finding, at))
        elif row.contested_by_revision is not None:
            touched.append(row.id)
        else:
            milder.append((row, finding))
    vanished = [
        row
        for fingerprint, row in stored.items()
        if row.state == OPEN and fingerprint not in found and row.contested_by_revision is None
    ]
    contested = _contested(connection, scope.source, milder, vanished)
    seen += [_seen_again(row, finding, at) for row, finding in milder if row.id not in contested]
    resolved = [
        (row, (notes or {}).get(row.scope_key, "no longer found"))
        for row in vanished
        if row.id not in contested
    ]
    counts.resolved = len(resolved)
    counts.contested = len(contested)

    opened_ids = _open(connection, opened, at)
    _change(connection, changed, at)
    _refresh(connection, seen, touched, at)

    changes = _found_changes(order, opened, opened_ids, changed, at)
    _record_found(connection, changes, at, now)
    changes += _record_contested(connection, list(contested.values()), at, now)
    changes += _record_resolved(connection, resolved, at, now)
    if listener is not None and changes:
        listener(connection, changes)
    return counts


def _unchanged(row: Row[Any], finding: Finding) -> bool:
    """Whether a violation found again at the same grade would be written as it is.

    Evidence is compared as the JSON it is stored as: Python holds 1, 1.0 and True
    equal, the stored text does not (a tuple and a list write the same text)."""
    if row.due_date != finding.due_date or row.provisional != finding.provisional:
        return False
    if row.evidence != finding.evidence:
        return False
    return _json(row.evidence) == _json(finding.evidence)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _refresh(
    connection: Connection, seen: list[dict[str, Any]], ids: Sequence[int], at: datetime
) -> None:
    """Write what changed of violations found again (`seen`, by id), and the time of
    those found again unchanged (`ids`, a few thousand a statement)."""
    update_rows(connection, schema.violations, seen, statement=_BY_ID)
    table = schema.violations
    for start in range(0, len(ids), 5000):
        connection.execute(
            update(table).where(table.c.id.in_(ids[start : start + 5000])).values(last_seen_at=at)
        )


def _seen_again(row: Row[Any], finding: Finding, at: datetime) -> dict[str, Any]:
    """The update of a violation found again without a graver grade: its evidence, and
    the due date and provisional mark that go with it (a calendar that gained a year
    moves a provisional due date and makes it final without changing the grade)."""
    return {
        "_id": row.id,
        "last_seen_at": at,
        "due_date": finding.due_date,
        "provisional": finding.provisional,
        "evidence": dict(finding.evidence),
    }


def _found_changes(
    order: Sequence[tuple[str, int]],
    opened: Sequence[Finding],
    opened_ids: Sequence[int],
    changed: Sequence[tuple[Row[Any], Finding, str, str]],
    at: datetime,
) -> list[ViolationChange]:
    """The opened, reopened and upgraded changes, in the order they were decided."""
    changes: list[ViolationChange] = []
    for what, index in order:
        if what == "opened":
            finding = opened[index]
            changes.append(
                ViolationChange(
                    opened_ids[index], "opened", None, finding.severity.value, finding, at
                )
            )
        else:
            row, finding, event, severity = changed[index]
            before = None if event == "reopened" else row.severity
            changes.append(ViolationChange(row.id, event, before, severity, finding, at))
    return changes


def _record_found(
    connection: Connection, changes: Sequence[ViolationChange], at: datetime, now: datetime
) -> None:
    found_events = [
        {
            "violation_id": change.violation_id,
            "event": change.event,
            "severity_from": change.severity_from,
            "severity_to": change.severity_to,
            "at": at,
            "recorded_at": now,
            "evidence": dict(change.finding.evidence),
        }
        for change in changes
        if change.finding is not None
    ]
    insert_rows(connection, schema.violation_events, found_events)


def _record_resolved(
    connection: Connection, resolved: Sequence[tuple[Row[Any], str]], at: datetime, now: datetime
) -> list[ViolationChange]:
    if not resolved:
        return []
    update_rows(
        connection,
        schema.violations,
        [{"_id": row.id, "state": RESOLVED, "resolved_at": at} for row, _ in resolved],
        statement=_BY_ID,
    )
    # A separate statement: these rows have a reason and no evidence column (NULL, not
    # JSON null), and they come after the others as in a row-by-row pass.
    insert_rows(
        connection,
        schema.violation_events,
        [
            {
                "violation_id": row.id,
                "event": "resolved",
                "severity_from": row.severity,
                "severity_to": None,
                "at": at,
                "recorded_at": now,
                "reason": reason,
            }
            for row, reason in resolved
        ],
    )
    return [
        ViolationChange(row.id, "resolved", row.severity, None, None, at) for row, _ in resolved
    ]


Contest = tuple[Row[Any], Finding | None, Any]  # violation, what is found now, revision


def _contested(
    connection: Connection,
    source: str,
    milder: Sequence[tuple[Row[Any], Finding]],
    vanished: Sequence[Row[Any]],
) -> dict[int, Contest]:
    """The violations found milder or not at all that a source revision contests."""
    revisions = altering_revisions(connection, source, [row for row, _ in milder] + [*vanished])
    contested: dict[int, Contest] = {}
    for row, finding in milder:
        if row.id in revisions:
            contested[row.id] = (row, finding, revisions[row.id])
    for row in vanished:
        if row.id in revisions:
            contested[row.id] = (row, None, revisions[row.id])
    return contested


def _record_contested(
    connection: Connection, contested: Sequence[Contest], at: datetime, now: datetime
) -> list[ViolationChange]:
    """Mark violations contested (they stay open, evidence kept) and record the events."""
    if not contested:
        return []
    update_rows(
        connection,
        schema.violations,
        [
            {"_id": row.id, "contested_by_revision": revision.id, "contested_at": at}
            for row, _, revision in contested
        ],
        statement=_BY_ID,
    )
    insert_rows(
        connection,
        schema.violation_events,
        [_contest_event(row, finding, revision, at, now) for row, finding, revision in contested],
    )
    return [
        ViolationChange(
            row.id,
            "contested",
            row.severity,
            None if finding is None else finding.severity.value,
            finding,
            at,
        )
        for row, finding, _ in contested
    ]


def _contest_event(
    row: Row[Any], finding: Finding | None, revision: Any, at: datetime, now: datetime
) -> dict[str, Any]:
    """The `contested` event: the revision, and what would have become of the violation."""
    severity_now = None if finding is None else finding.severity.value
    return {
        "violation_id": row.id,
        "event": "contested",
        "severity_from": row.severity,
        "severity_to": severity_now,
        "at": at,
        "recorded_at": now,
        "reason": contest_reason(revision, severity_now),
        "evidence": {
            "revision_id": revision.id,
            "field": f"{revision.entity}.{revision.field}",
            "row_key": revision.row_key,
            "old_value": revision.old_value,
            "new_value": revision.new_value,
            "found_now": None if finding is None else dict(finding.evidence),
        },
    }


# One UPDATE by id for an executemany: the columns set are the keys of the parameters.
_BY_ID = update(schema.violations).where(schema.violations.c.id == bindparam("_id"))


def _load(connection: Connection, scope: Scope) -> dict[str, Row[Any]]:
    table = schema.violations
    rows: dict[str, Row[Any]] = {}
    if scope.span is not None:
        # At a million cases the lists of 900 keys cost a tenth of a full evaluation.
        # The range may hold keys outside the scope (a case the rule failed on): those
        # are left out, so their violations stay as they are.
        low, high = scope.span
        keys = set(scope.keys)
        query = select(table).where(
            table.c.rule_id == scope.rule_id,
            table.c.source == scope.source,
            table.c.scope_key >= low,
            table.c.scope_key <= high,
        )
        for row in connection.execute(query):
            if row.scope_key in keys:
                rows[row.fingerprint] = row
        return rows
    ids = list(scope.keys)
    for start in range(0, len(ids), 900):
        query = select(table).where(
            table.c.rule_id == scope.rule_id,
            table.c.source == scope.source,
            among_keys(connection, table.c.scope_key, ids[start : start + 900]),
        )
        for row in connection.execute(query):
            rows[row.fingerprint] = row
    return rows


def _open(connection: Connection, findings: Sequence[Finding], at: datetime) -> list[int]:
    """Insert a violation per finding (in one statement); their ids, in the same order.

    Many rows on PostgreSQL: ids drawn from the sequence first, ascending in the order
    of the findings, and the rows copied with them (`watchdog.store.copy`)."""
    if not findings:
        return []
    table = schema.violations
    rows = [
        {
            "fingerprint": finding.fingerprint,
            "rule_id": finding.rule_id,
            "kind": finding.kind,
            "finding": finding.finding,
            "source": finding.source,
            "case_id": finding.case_id,
            "scope_key": finding.scope_key,
            "subject": finding.subject,
            "dept_code": finding.dept_code,
            "severity": finding.severity.value,
            "state": OPEN,
            "opened_at": at,
            "last_seen_at": at,
            "due_date": finding.due_date,
            "provisional": finding.provisional,
            "evidence": dict(finding.evidence),
        }
        for finding in findings
    ]
    if uses_copy(connection, len(rows)):
        drawn = next_ids(connection, table, len(rows))
        insert_rows(
            connection, table, [{"id": id_, **row} for id_, row in zip(drawn, rows, strict=True)]
        )
        return drawn
    # Fingerprints are unique, so they map RETURNING rows back to the findings whatever
    # order the database returns them in.
    inserted = connection.execute(insert(table).returning(table.c.id, table.c.fingerprint), rows)
    ids = {fingerprint: violation_id for violation_id, fingerprint in inserted}
    return [ids[row["fingerprint"]] for row in rows]


def _change(
    connection: Connection, changed: Sequence[tuple[Row[Any], Finding, str, str]], at: datetime
) -> None:
    """Reopen or upgrade stored violations with what was found now."""
    if not changed:
        return
    update_rows(
        connection,
        schema.violations,
        [
            {
                "_id": row.id,
                "severity": severity,
                "state": OPEN,
                "resolved_at": None,
                "last_seen_at": at,
                "due_date": finding.due_date,
                "provisional": finding.provisional,
                "evidence": dict(finding.evidence),
            }
            for row, finding, _, severity in changed
        ],
        statement=_BY_ID,
    )
