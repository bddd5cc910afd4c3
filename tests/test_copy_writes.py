"""Many violations, events and audit entries written at once (COPY on PostgreSQL) are
stored exactly as a few written by INSERT are, in the caller's transaction."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, Text, bindparam, cast, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from watchdog.audit.chain import canonical
from watchdog.audit.hooks import audit_violation_changes, violation_entries
from watchdog.audit.verify import verify_store
from watchdog.clock import Severity
from watchdog.engine.findings import Finding
from watchdog.store import schema
from watchdog.store.copy import COPY_MIN_ROWS, insert_rows, update_rows
from watchdog.violations import Scope, ViolationChange, reconcile

# An instant given in another zone, with microseconds: stored as the same UTC instant.
AT = datetime(2026, 3, 9, 18, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
LATER = AT + timedelta(days=1, microseconds=1)
MANY, FEW = 300, 5


def finding(number: int) -> Finding:
    """Findings whose text needs escaping in COPY's format, with and without a due date."""
    return Finding(
        rule_id="overdue",
        kind="overdue",
        finding="overdue" if number % 2 else "late",
        source="county",
        case_id=f"C{number:04d}",
        subject=None if number % 7 == 0 else f"案件 {number}\ttab\nline \\ back 'q' \"dq\"",
        dept_code=None if number % 5 == 0 else "SCJGJ",
        severity=(Severity.WARNING, Severity.YELLOW, Severity.RED)[number % 3],
        due_date=None if number % 4 == 0 else date(2026, 3, 1) + timedelta(days=number % 30),
        provisional=number % 3 == 0,
        evidence={
            "days_late": number,
            "ratio": number / 7,
            "note": "\\N\ttab\nnewline 中文 \u2028",
            "steps": ["receive", None, {"nested": True}],
            "nothing": None,
        },
    )


def inserts(store: Engine) -> tuple[list[str], Any]:
    """The INSERT statements run on `store` (COPY runs none), and the listener to remove."""
    statements: list[str] = []

    def count(_c: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.startswith("INSERT"):
            statements.append(statement.split("(", 1)[0].rsplit(maxsplit=1)[-1])

    event.listen(store, "before_cursor_execute", count)
    return statements, count


def as_text(column: Any) -> Any:
    """A JSON column's stored text (NULL stays None, JSON null is 'null')."""
    return cast(column, Text)


@pytest.mark.parametrize("count", [MANY, FEW])
def test_violations_events_and_entries_are_stored_alike_however_many(
    store: Engine, count: int
) -> None:
    assert FEW < COPY_MIN_ROWS <= MANY
    findings = [finding(number) for number in range(count)]
    keys = [f.case_id for f in findings if f.case_id]
    heard: list[ViolationChange] = []

    def listener(connection: Any, changes: Any) -> None:
        heard.extend(changes)
        audit_violation_changes(connection, changes)

    statements, counter = inserts(store)
    try:
        with store.begin() as connection:
            counts = reconcile(
                connection,
                Scope("overdue", "county", keys),
                findings,
                at=AT,
                now=LATER,
                listener=listener,
            )
    finally:
        event.remove(store, "before_cursor_execute", counter)
    assert counts.opened == count
    copied = store.dialect.name == "postgresql" and count >= COPY_MIN_ROWS
    assert statements == ([] if copied else ["violations", "violation_events", "audit_log"])

    v, e, log = schema.violations, schema.violation_events, schema.audit_log
    with store.connect() as connection:
        violations = connection.execute(
            select(v, as_text(v.c.evidence).label("raw")).order_by(v.c.id)
        ).all()
        events = connection.execute(
            select(e, as_text(e.c.evidence).label("raw")).order_by(e.c.id)
        ).all()
        entries = connection.execute(
            select(log, as_text(log.c.payload).label("raw")).order_by(log.c.seq)
        ).all()

    # Ids ascend in the order the findings were opened; events and entries name them.
    ids = [row.id for row in violations]
    assert ids == sorted(ids) and len(set(ids)) == count
    assert [c.violation_id for c in heard] == ids
    assert [row.fingerprint for row in violations] == [f.fingerprint for f in findings]
    for row, f in zip(violations, findings, strict=True):
        assert (
            row.rule_id, row.kind, row.finding, row.source, row.case_id, row.scope_key,
            row.subject, row.dept_code, row.severity, row.state, row.due_date,
            row.provisional, row.resolved_at, row.contested_by_revision, row.contested_at,
        ) == (
            f.rule_id, f.kind, f.finding, f.source, f.case_id, f.scope_key, f.subject,
            f.dept_code, f.severity.value, "open", f.due_date, f.provisional, None, None,
            None,
        )  # fmt: skip
        assert row.opened_at == AT and row.last_seen_at == AT
        assert row.opened_at.utcoffset() == timedelta(0)
        assert row.opened_at.isoformat() == "2026-03-09T10:30:15.123456+00:00"
        assert row.evidence == f.evidence
        assert row.raw == json.dumps(f.evidence)  # the text SQLAlchemy's JSON type writes

    assert [
        (r.violation_id, r.event, r.severity_from, r.severity_to, r.reason) for r in events
    ] == [(i, "opened", None, f.severity.value, None) for i, f in zip(ids, findings, strict=True)]
    for row, f in zip(events, findings, strict=True):
        assert (row.at, row.recorded_at) == (AT, LATER)
        assert row.raw == json.dumps(f.evidence)

    expected = violation_entries(heard)
    assert [(r.seq, r.entity, r.entity_id, r.action) for r in entries] == [
        (seq, "violation", str(i), "opened") for seq, i in enumerate(ids, start=1)
    ]
    for row, entry in zip(entries, expected, strict=True):
        assert row.raw == canonical(entry.payload)  # the hashed text, unchanged
        assert row.at == AT and row.actor == "watchdog"
    assert verify_store(store).ok

    # All vanish: resolved, their events without evidence (SQL NULL, not JSON null).
    with store.begin() as connection:
        counts = reconcile(
            connection, Scope("overdue", "county", keys), [], at=LATER, now=LATER,
            notes={keys[0]: "completed\ton time"}, listener=audit_violation_changes,
        )  # fmt: skip
    assert counts.resolved == count
    with store.connect() as connection:
        resolved = connection.execute(
            select(e, as_text(e.c.evidence).label("raw"))
            .where(e.c.event == "resolved")
            .order_by(e.c.id)
        ).all()
        states = connection.execute(select(v.c.state, v.c.resolved_at).order_by(v.c.id)).all()
        seqs = connection.execute(select(func.count(), func.max(log.c.seq))).one()
    assert [(r.violation_id, r.severity_from, r.severity_to, r.raw) for r in resolved] == [
        (i, f.severity.value, None, None) for i, f in zip(ids, findings, strict=True)
    ]
    assert [r.reason for r in resolved] == ["completed\ton time"] + ["no longer found"] * (
        count - 1
    )
    assert {(r.at, r.evidence) for r in resolved} == {(LATER, None)}
    assert set(states) == {("resolved", LATER)}
    assert tuple(seqs) == (2 * count, 2 * count)
    assert verify_store(store).ok


def test_copied_rows_are_the_rows_an_insert_writes(store: Engine) -> None:
    # The same events through both paths: every column's stored text is the same.
    with store.begin() as connection:
        reconcile(connection, Scope("overdue", "county", ["C0001"]), [finding(1)], at=AT, now=AT)
        violation_id = connection.execute(select(schema.violations.c.id)).scalar_one()
    e = schema.violation_events

    def rows() -> list[dict[str, Any]]:
        return [
            {
                "violation_id": violation_id,
                "event": "upgraded",
                "severity_from": None if n % 2 else "warning",
                "severity_to": "red",
                "at": AT + timedelta(microseconds=n),
                "recorded_at": LATER,
                "reason": f"reason {n}\t\\N" if n % 3 else None,
                "evidence": None if n % 5 == 0 else {**finding(n).evidence, "n": n},
            }
            for n in range(MANY)
        ]

    with store.begin() as connection:
        insert_rows(connection, e, rows())  # first the copied, then the inserted
        connection.execute(insert(e), rows())
    columns = [c for c in e.c if c.key != "id"]
    with store.connect() as connection:
        stored = connection.execute(
            select(*(cast(c, Text) for c in columns))
            .where(e.c.event == "upgraded")
            .order_by(e.c.id)
        ).all()
    copied, inserted = [tuple(r) for r in stored[:MANY]], [tuple(r) for r in stored[MANY:]]
    assert len(inserted) == MANY
    assert copied == inserted
    # A Python None in a JSON column is JSON null, as SQLAlchemy's JSON type writes it.
    assert {r[-1] for r in copied[::5]} == {"null"}


def test_a_failure_in_the_transaction_takes_the_copied_rows_back(store: Engine) -> None:
    findings = [finding(number) for number in range(MANY)]
    keys = [f.case_id for f in findings if f.case_id]

    def failing(connection: Any, changes: Any) -> None:
        audit_violation_changes(connection, changes)
        raise RuntimeError("the notice could not be drawn")

    with pytest.raises(RuntimeError), store.begin() as connection:
        reconcile(
            connection, Scope("overdue", "county", keys), findings, at=AT, now=AT,
            listener=failing,
        )  # fmt: skip
    tables = (schema.violations, schema.violation_events, schema.audit_log)
    with store.connect() as connection:
        assert [
            connection.execute(select(func.count()).select_from(t)).scalar_one() for t in tables
        ] == [0, 0, 0]
    # The same findings again: opened once, the chain starting over from its first entry.
    with store.begin() as connection:
        counts = reconcile(
            connection, Scope("overdue", "county", keys), findings, at=AT, now=AT,
            listener=audit_violation_changes,
        )  # fmt: skip
    assert counts.opened == MANY
    with store.connect() as connection:
        assert [
            connection.execute(select(func.count()).select_from(t)).scalar_one() for t in tables
        ] == [MANY, MANY, MANY]
    result = verify_store(store)
    assert result.ok and (result.entries, result.last_seq) == (MANY, MANY)


def test_rows_updated_at_once_are_the_rows_an_executemany_updates(store: Engine) -> None:
    # Two sets of violations get the same new values, one by `update_rows` (one
    # statement on PostgreSQL), one by the executemany it replaces: stored alike.
    v = schema.violations
    findings = [finding(n) for n in range(1, 2 * MANY + 1)]
    with store.begin() as connection:
        reconcile(
            connection,
            Scope("overdue", "county", [f.case_id or "" for f in findings]),
            findings,
            at=AT,
            now=AT,
        )
        ids = list(connection.scalars(select(v.c.id).order_by(v.c.id)))
    by_id = update(v).where(v.c.id == bindparam("_id"))

    def rows(chosen: list[int]) -> list[dict[str, Any]]:
        return [
            {
                "_id": violation_id,
                "last_seen_at": LATER + timedelta(microseconds=n),
                "resolved_at": None,
                "due_date": None if n % 4 == 0 else date(2026, 4, 1) + timedelta(days=n % 9),
                "provisional": n % 2 == 0,
                "evidence": {**finding(n).evidence, "again": n},
            }
            for n, violation_id in enumerate(chosen)
        ]

    statements: list[str] = []

    def count(_c: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(store, "before_cursor_execute", count)
    try:
        with store.begin() as connection:
            update_rows(connection, v, rows(ids[:MANY]), statement=by_id)
    finally:
        event.remove(store, "before_cursor_execute", count)
    with store.begin() as connection:
        connection.execute(by_id, rows(ids[MANY:]))
    if store.dialect.name == "postgresql":
        assert len(statements) == 1  # one UPDATE for all rows
    columns = [v.c.last_seen_at, v.c.resolved_at, v.c.due_date, v.c.provisional, v.c.evidence]
    with store.connect() as connection:
        stored = connection.execute(
            select(*(cast(c, Text) for c in columns)).order_by(v.c.id)
        ).all()
    assert [tuple(r) for r in stored[:MANY]] == [tuple(r) for r in stored[MANY:]]


def test_a_row_the_store_refuses_is_sqlalchemys_integrity_error_either_way(store: Engine) -> None:
    rows = [
        {
            "violation_id": 999_999,  # no such violation
            "event": "opened",
            "severity_from": None,
            "severity_to": "red",
            "at": AT,
            "recorded_at": LATER,
            "evidence": {"n": n},
        }
        for n in range(MANY)
    ]
    with pytest.raises(IntegrityError), store.begin() as connection:
        insert_rows(connection, schema.violation_events, rows)
