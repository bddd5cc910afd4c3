"""Incremental passes find the open cases whose clock crossed a threshold by their
stored checks, without looking at every open case."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from watchdog.calendar import WorkCalendar
from watchdog.clock import CaseClock, ClockReading, GradingPolicy, PauseSpan, read_clock
from watchdog.engine.checks import OVERDUE, next_threshold
from watchdog.engine.evaluate import EvaluationPass, evaluate_overdue
from watchdog.engine.overdue import OverdueRule, OverdueRuleSettings
from watchdog.store import schema

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar()
POLICY = GradingPolicy(warning_days=2, red_days_past_promised=5)
RULE = OverdueRule(OverdueRuleSettings("overdue", POLICY), CALENDAR)


def at(day: str, hour: int = 18) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+08:00")


def reading(clock: CaseClock, on: str) -> ClockReading | None:
    return read_clock(clock, date.fromisoformat(on), CALENDAR, POLICY)


def test_next_threshold_is_the_first_date_the_grade_may_change() -> None:
    # Accepted Monday 2026-06-01, 10 working days: due Monday 2026-06-15.
    clock = CaseClock(date(2026, 6, 1), None, 10, 20, "W")
    # On 06-02 nine days remain: a warning (<= 2 left) cannot come before 06-09.
    assert next_threshold(reading(clock, "2026-06-02"), POLICY, SHANGHAI) == at("2026-06-09", 0)
    # Warned on 06-11 (two days left): next is the day after the due date.
    warned = reading(clock, "2026-06-11")
    assert warned is not None and warned.severity == "warning"
    assert next_threshold(warned, POLICY, SHANGHAI) == at("2026-06-16", 0)
    # Yellow on 06-16: next is the day after the statutory due date (20 working days).
    yellow = reading(clock, "2026-06-16")
    assert yellow is not None and yellow.severity == "yellow"
    assert yellow.statutory is not None and yellow.statutory.due == date(2026, 6, 30)
    assert next_threshold(yellow, POLICY, SHANGHAI) == at("2026-07-01", 0)
    # Red, completed, not accepted, or held by a running pause: time alone changes nothing.
    assert next_threshold(reading(clock, "2026-07-01"), POLICY, SHANGHAI) is None
    done = CaseClock(date(2026, 6, 1), date(2026, 6, 5), 10, 20, "W")
    assert next_threshold(reading(done, "2026-06-08"), POLICY, SHANGHAI) is None
    assert next_threshold(None, POLICY, SHANGHAI) is None
    paused = CaseClock(
        date(2026, 6, 1), None, 10, 20, "W", (PauseSpan("expert_review", date(2026, 6, 3), None),)
    )
    assert next_threshold(reading(paused, "2026-06-20"), POLICY, SHANGHAI) is None


def add_case(store: Engine, case_id: str, accepted: str, seq: int = 1) -> None:
    moment = at(accepted, 10)
    with store.begin() as connection:
        connection.execute(
            schema.cases.insert().values(
                source="county",
                case_id=case_id,
                matter_code="M1",
                matter_name="食品经营许可",
                dept_code="SCJG",
                dept_name="县市场监管局",
                accepted_at=moment,
                promised_limit=10,
                statutory_limit=20,
                limit_unit="W",
                updated_at=moment,
                change_seq=seq,
            )
        )


def overdue_pass(store: Engine, as_of: datetime, since: int | None) -> tuple[int, set[str]]:
    last = None if since is None else at("2026-06-01")
    run = EvaluationPass(store, "county", SHANGHAI, as_of, True, since=since, last=last)
    result = evaluate_overdue(run, RULE)
    table = schema.violations
    with store.connect() as connection:
        grades = connection.execute(
            select(table.c.case_id, table.c.severity).where(table.c.state == "open")
        )
        return result.cases_evaluated, {f"{r.case_id}:{r.severity}" for r in grades}


def test_an_incremental_pass_looks_only_at_due_checks_and_changed_cases(store: Engine) -> None:
    add_case(store, "A", "2026-06-01")
    add_case(store, "B", "2026-06-01")
    assert overdue_pass(store, at("2026-06-02"), since=None) == (2, set())
    with store.connect() as connection:
        checks = connection.execute(
            select(schema.case_checks.c.case_id, schema.case_checks.c.check_at).where(
                schema.case_checks.c["pass"] == OVERDUE
            )
        ).all()
    assert sorted(checks) == [("A", at("2026-06-09", 0)), ("B", at("2026-06-09", 0))]

    # Nothing changed and no check is due: the open cases are not looked at.
    assert overdue_pass(store, at("2026-06-05"), since=1) == (0, set())
    # A new case is looked at because it changed, the others still are not.
    add_case(store, "C", "2026-06-04", seq=2)
    assert overdue_pass(store, at("2026-06-05"), since=1) == (1, set())
    # Past the due date of A and B (06-15) their checks are due: yellow without any change.
    evaluated, grades = overdue_pass(store, at("2026-06-16"), since=2)
    assert grades == {"A:yellow", "B:yellow", "C:warning"}
    assert evaluated == 3
    # Red after the statutory due date, then nothing more to check for A and B.
    assert overdue_pass(store, at("2026-07-01"), since=2)[1] == {"A:red", "B:red", "C:yellow"}
    assert overdue_pass(store, at("2026-07-02"), since=2)[0] == 0
