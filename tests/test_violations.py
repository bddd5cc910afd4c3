"""Findings → violations: one per fingerprint, severity only upward, every change an event."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, Text, cast, event, select

from watchdog.clock import Severity
from watchdog.engine.findings import Finding
from watchdog.store import schema
from watchdog.violations import Scope, reconcile

MONDAY = datetime(2026, 3, 9, 10, tzinfo=UTC)


def overdue(case_id: str, severity: Severity, days_late: int = 0) -> Finding:
    return Finding(
        rule_id="overdue",
        kind="overdue",
        finding="overdue",
        source="county",
        case_id=case_id,
        subject=None,
        dept_code="SCJGJ",
        severity=severity,
        due_date=date(2026, 3, 9),
        provisional=False,
        evidence={"days_late": days_late},
    )


def run(store: Engine, case_ids: list[str], findings: list[Finding], day: int) -> tuple[int, ...]:
    at = MONDAY.replace(day=day)
    with store.begin() as connection:
        counts = reconcile(
            connection,
            Scope("overdue", "county", case_ids),
            findings,
            at=at,
            now=at,
            notes={"C1": "completed on time"},
        )
    return counts.opened, counts.upgraded, counts.resolved, counts.reopened


def history(store: Engine) -> list[tuple[str, str | None, str | None, str | None]]:
    e = schema.violation_events
    with store.connect() as connection:
        rows = connection.execute(select(e).order_by(e.c.id))
        return [(r.event, r.severity_from, r.severity_to, r.reason) for r in rows]


def test_one_case_is_one_violation_upgraded_but_never_downgraded(store: Engine) -> None:
    assert run(store, ["C1"], [overdue("C1", Severity.WARNING)], 9) == (1, 0, 0, 0)
    assert run(store, ["C1"], [overdue("C1", Severity.WARNING)], 10) == (0, 0, 0, 0)
    assert run(store, ["C1"], [overdue("C1", Severity.RED, 6)], 16) == (0, 1, 0, 0)
    assert run(store, ["C1"], [overdue("C1", Severity.YELLOW, 7)], 17) == (0, 0, 0, 0)
    with store.connect() as connection:
        (violation,) = connection.execute(select(schema.violations)).all()
    assert (violation.severity, violation.state) == ("red", "open")
    assert violation.evidence == {"days_late": 7}  # the latest evidence is kept
    assert violation.last_seen_at == MONDAY.replace(day=17)
    assert history(store) == [
        ("opened", None, "warning", None),
        ("upgraded", "warning", "red", None),
    ]


def test_a_violation_no_longer_found_is_resolved_with_the_rules_reason_and_can_reopen(
    store: Engine,
) -> None:
    run(store, ["C1"], [overdue("C1", Severity.WARNING)], 9)
    assert run(store, ["C1"], [], 10) == (0, 0, 1, 0)
    assert run(store, ["C1"], [overdue("C1", Severity.YELLOW)], 11) == (0, 0, 0, 1)
    assert history(store) == [
        ("opened", None, "warning", None),
        ("resolved", "warning", None, "completed on time"),
        ("reopened", None, "yellow", None),
    ]


def test_cases_outside_the_scope_keep_their_violations(store: Engine) -> None:
    run(store, ["C1", "C2"], [overdue("C1", Severity.RED), overdue("C2", Severity.RED)], 9)
    assert run(store, ["C2"], [], 10) == (0, 0, 1, 0)
    with store.connect() as connection:
        states = dict(
            connection.execute(select(schema.violations.c.case_id, schema.violations.c.state)).all()
        )
    assert states == {"C1": "open", "C2": "resolved"}


def test_violations_found_again_unchanged_are_written_in_one_statement(store: Engine) -> None:
    # Ten violations found again at the same grade: eight exactly as stored, two with
    # new evidence. The eight cost one UPDATE of last_seen_at, not one each.
    case_ids = [f"C{i}" for i in range(10)]
    run(store, case_ids, [overdue(c, Severity.YELLOW, 1) for c in case_ids], 9)
    again = [overdue(c, Severity.YELLOW, 2 if c in ("C3", "C7") else 1) for c in case_ids]
    statements: list[str] = []

    def count(_c: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(store, "before_cursor_execute", count)
    try:
        run(store, case_ids, again, 10)
    finally:
        event.remove(store, "before_cursor_execute", count)
    updates = [s for s in statements if s.startswith("UPDATE violations")]
    assert len(updates) == 2  # the evidence of two (one executemany), the time of eight
    with store.connect() as connection:
        rows = connection.execute(select(schema.violations).order_by("case_id")).all()
    assert {r.case_id: r.evidence["days_late"] for r in rows} == {
        c: 2 if c in ("C3", "C7") else 1 for c in case_ids
    }
    assert {r.last_seen_at for r in rows} == {MONDAY.replace(day=10)}
    assert [e for e in history(store) if e[0] != "opened"] == []


def test_evidence_equal_in_python_but_not_as_json_is_written_again(store: Engine) -> None:
    run(store, ["C1"], [overdue("C1", Severity.YELLOW, 1)], 9)
    again = overdue("C1", Severity.YELLOW, 1)
    again = Finding(**{**again.__dict__, "evidence": {"days_late": 1.0}})  # 1 == 1.0
    run(store, ["C1"], [again], 10)
    with store.connect() as connection:
        stored = connection.scalar(select(cast(schema.violations.c.evidence, Text)))
    assert stored is not None and json.loads(stored) == {"days_late": 1.0}
    assert "1.0" in stored
