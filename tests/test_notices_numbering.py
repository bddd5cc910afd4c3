"""Notice numbers: per prefix and year, gapless, never duplicated, also under two
concurrent issuers on one store."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from sqlalchemy import Engine, create_engine, select

from watchdog.calendar import WorkCalendar
from watchdog.clock import Severity
from watchdog.engine.findings import Finding
from watchdog.engine.rulefiles import load_rules
from watchdog.notices.issuing import NoticeIssuer, load_violations
from watchdog.notices.numbering import draw_number, format_number
from watchdog.notices.settings import NoticeSettings
from watchdog.store import schema
from watchdog.violations import Scope, reconcile

RULES = Path(__file__).resolve().parent.parent / "rules"
SETTINGS = NoticeSettings(
    enabled=True,
    supervision_office=("jianchake@example.gov.cn",),
    contacts=MappingProxyType({"SCJGJ": ("scj@example.gov.cn",)}),
)


def overdue_finding(case_id: str, severity: Severity, dept: str = "SCJGJ") -> Finding:
    return Finding(
        rule_id="overdue",
        kind="overdue",
        finding="overdue",
        source="county",
        case_id=case_id,
        subject=None,
        dept_code=dept,
        severity=severity,
        due_date=date(2026, 3, 9),
        provisional=False,
        evidence={
            "matter_code": "SC001",
            "matter_name": "食品经营许可证核发",
            "dept_name": "东阳县市场监督管理局",
            "accepted_on": "2026-03-02",
            "unit": "W",
            "promised_limit": 5,
            "statutory_limit": None,
            "extension_days": 0,
            "pauses": [],
            "due_date": "2026-03-09",
            "statutory_due_date": None,
            "red_due_date": "2026-03-16",
            "completed_on": None,
            "evaluated_on": "2026-03-11",
            "counted_days": 7,
            "days_late": 2,
            "remaining_days": None,
            "provisional": False,
            "calendar_coverage_end": "2026-12-31",
        },
    )


def make_issuer(settings: NoticeSettings = SETTINGS) -> NoticeIssuer:
    rules = load_rules(RULES)
    return NoticeIssuer(settings, WorkCalendar(), lambda: rules)


def test_numbers_count_per_prefix_and_year_and_format_with_six_digits(store: Engine) -> None:
    with store.begin() as connection:
        drawn = [draw_number(connection, "JC", 2026) for _ in range(3)]
        drawn.append(draw_number(connection, "JC", 2027))
        drawn.append(draw_number(connection, "DB", 2026))
    assert drawn == [1, 2, 3, 1, 1]
    assert format_number("JC", 2026, 123) == "JC-2026-000123"
    assert format_number("JC", 2026, 1_234_567) == "JC-2026-1234567"


def test_a_rolled_back_notice_returns_its_number(store: Engine) -> None:
    with store.begin() as connection:
        assert draw_number(connection, "JC", 2026) == 1
    with pytest.raises(RuntimeError), store.begin() as connection:
        assert draw_number(connection, "JC", 2026) == 2
        raise RuntimeError("the notice failed after drawing its number")
    with store.begin() as connection:
        assert draw_number(connection, "JC", 2026) == 2


def test_two_concurrent_issuers_number_400_notices_1_to_400_without_gap_or_duplicate(
    store: Engine, store_url: str
) -> None:
    at = datetime(2026, 3, 11, 10, tzinfo=UTC)
    with store.begin() as connection:
        reconcile(
            connection,
            Scope("overdue", "county", ["C1"]),
            [overdue_finding("C1", Severity.YELLOW)],
            at=at,
            now=at,
        )
        (violation,) = load_violations(connection, [1])
    per_issuer = 200
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def issue_many() -> None:
        # Each issuer is a daemon of its own: its own engine, so its own connections.
        engine = create_engine(store_url) if store.dialect.name == "postgresql" else store
        issuer = make_issuer()
        try:
            barrier.wait()
            for _ in range(per_issuer):
                with engine.begin() as connection:
                    issuer.issue(connection, [violation], at=at)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            if engine is not store:
                engine.dispose()

    threads = [threading.Thread(target=issue_many) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    n = schema.notices
    with store.connect() as connection:
        numbers = connection.execute(select(n.c.number)).scalars().all()
        counter = connection.execute(select(schema.notice_counters)).one()
    assert sorted(numbers) == [format_number("JC", 2026, i) for i in range(1, 401)]
    assert (counter.prefix, counter.year, counter.last_number) == ("JC", 2026, 400)
