"""Escalation (督办) on the working day after the rectification deadline.

A yellow notice issued on Wed 2026-09-16 has 10 working days: 9/17 9/18 9/20 (a make-up
Sunday) 9/21 9/22 9/23 9/24 9/28 9/29 9/30 (9/25–9/27 are off) → deadline 2026-09-30.
10/1–10/7 is the National Day holiday, so the first working day after the deadline,
and the escalation day, is 2026-10-08 — not 10/01.
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from tests.test_notices_numbering import make_issuer, overdue_finding
from watchdog.clock import Severity
from watchdog.notices.escalation import escalate_overdue, escalation_day
from watchdog.notices.issuing import NoticeIssuer
from watchdog.notices.lifecycle import acknowledge, rectify
from watchdog.notices.settings import NoticeSettings
from watchdog.store import schema
from watchdog.violations import Scope, reconcile

SHANGHAI = ZoneInfo("Asia/Shanghai")
SETTINGS = NoticeSettings(
    enabled=True,
    supervision_office=("jianchake@example.gov.cn",),
    leadership=("lingdao@example.gov.cn",),
    contacts=MappingProxyType({"SCJGJ": ("scj@example.gov.cn",), "ZJJ": ("zjj@example.gov.cn",)}),
    escalation=MappingProxyType({"SCJGJ": ("fgld-scjg@example.gov.cn",)}),
)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def issue_yellow(store: Engine, issuer: NoticeIssuer, case_id: str, dept: str) -> None:
    at = local("2026-09-16T10:00:00")
    with store.begin() as connection:
        reconcile(
            connection,
            Scope("overdue", "county", [case_id]),
            [overdue_finding(case_id, Severity.YELLOW, dept)],
            at=at,
            now=at,
            listener=issuer.listener,
        )


def notices(store: Engine) -> list[tuple[str, str, str, str | None]]:
    n = schema.notices
    with store.connect() as connection:
        rows = connection.execute(select(n).order_by(n.c.id)).all()
        numbers = {row.id: row.number for row in rows}
        return [(row.number, row.kind, row.state, numbers.get(row.refers_to_id)) for row in rows]


def test_a_notice_due_before_a_holiday_is_escalated_on_the_next_working_day(
    store: Engine,
) -> None:
    issuer = make_issuer(SETTINGS)
    issue_yellow(store, issuer, "C1", "SCJGJ")
    n = schema.notices
    with store.connect() as connection:
        deadline = connection.execute(select(n.c.deadline)).scalar_one()
    assert deadline.isoformat() == "2026-09-30"
    assert escalation_day(issuer, deadline).isoformat() == "2026-10-08"

    for moment in ("2026-09-30T23:59:00", "2026-10-01T09:00:00", "2026-10-07T18:00:00"):
        assert escalate_overdue(store, issuer, local(moment)).escalated == []
    assert notices(store) == [("JC-2026-000001", "rectification", "issued", None)]

    result = escalate_overdue(store, issuer, local("2026-10-08T08:00:00"))
    assert (result.escalated, result.errors) == (["JC-2026-000001"], [])
    assert notices(store) == [
        ("JC-2026-000001", "rectification", "escalated", None),
        ("JC-2026-000002", "escalation", "issued", "JC-2026-000001"),
    ]
    assert escalate_overdue(store, issuer, local("2026-10-09T08:00:00")).escalated == []

    d, e, ve = schema.deliveries, schema.notice_events, schema.violation_events
    with store.connect() as connection:
        original, escalation = connection.execute(select(n).order_by(n.c.id)).all()
        recipients = connection.execute(
            select(d.c.recipient, d.c.role).where(d.c.notice_id == escalation.id).order_by(d.c.id)
        ).all()
        events = connection.execute(
            select(e.c.event, e.c.state_from, e.c.state_to, e.c.actor, e.c.detail)
            .where(e.c.notice_id == original.id)
            .order_by(e.c.id)
        ).all()
        violation_events = connection.execute(
            select(ve.c.event, ve.c.reason).where(ve.c.event == "escalated")
        ).all()
    assert original.escalated_at == local("2026-10-08T08:00:00")
    assert recipients == [("fgld-scjg@example.gov.cn", "to"), ("jianchake@example.gov.cn", "cc")]
    assert events[-1] == (
        "escalated",
        "issued",
        "escalated",
        "watchdog",
        "not rectified by the deadline 2026-09-30; escalated as JC-2026-000002",
    )
    assert violation_events == [
        (
            "escalated",
            "notice JC-2026-000001 not rectified by 2026-09-30: "
            "escalated (督办) as notice JC-2026-000002",
        )
    ]
    assert escalation.subject.startswith("【督办】督办通知书 JC-2026-000002")
    assert "发出整改通知书（编号 JC-2026-000001），要求于 2026-09-30（含当日）前" in (
        escalation.body_text
    )
    assert "仍为“已发出”状态" in escalation.body_text


def test_a_rectified_notice_is_not_escalated_and_a_department_without_a_level_goes_to_leadership(
    store: Engine,
) -> None:
    issuer = make_issuer(SETTINGS)
    issue_yellow(store, issuer, "C1", "SCJGJ")
    issue_yellow(store, issuer, "C2", "ZJJ")
    with store.begin() as connection:
        acknowledge(connection, "JC-2026-000001", by="张三", at=local("2026-09-18T09:00:00"))
        rectify(
            connection,
            "JC-2026-000001",
            reply="已办结并约谈经办人",
            by="张三",
            at=local("2026-09-29T09:00:00"),
        )
    result = escalate_overdue(store, issuer, local("2026-10-08T08:00:00"))
    assert result.escalated == ["JC-2026-000002"]
    d, n = schema.deliveries, schema.notices
    with store.connect() as connection:
        escalation_id = connection.execute(
            select(n.c.id).where(n.c.kind == "escalation")
        ).scalar_one()
        recipients = connection.execute(
            select(d.c.recipient, d.c.role).where(d.c.notice_id == escalation_id).order_by(d.c.id)
        ).all()
    assert recipients == [("lingdao@example.gov.cn", "to"), ("jianchake@example.gov.cn", "cc")]
    assert [row[2] for row in notices(store)] == ["rectified", "escalated", "issued"]


def test_a_deadline_in_a_year_without_a_holiday_schedule_is_marked_provisional(
    store: Engine,
) -> None:
    issuer = make_issuer(SETTINGS)
    at = local("2026-12-24T10:00:00")
    with store.begin() as connection:
        reconcile(
            connection,
            Scope("overdue", "county", ["C1"]),
            [overdue_finding("C1", Severity.RED)],
            at=at,
            now=at,
            listener=issuer.listener,
        )
    n = schema.notices
    with store.connect() as connection:
        deadline, text, html = connection.execute(
            select(n.c.deadline, n.c.body_text, n.c.body_html)
        ).one()
    # 12/25 12/28 12/29 12/30 12/31 are working days of 2026: the 5th is 12/31, covered.
    assert deadline.isoformat() == "2026-12-31"
    assert "为暂定期限" not in text
    at = local("2026-12-28T10:00:00")
    with store.begin() as connection:
        reconcile(
            connection,
            Scope("overdue", "county", ["C2"]),
            [overdue_finding("C2", Severity.RED)],
            at=at,
            now=at,
            listener=issuer.listener,
        )
        deadline, text, html = connection.execute(
            select(n.c.deadline, n.c.body_text, n.c.body_html).order_by(n.c.id.desc()).limit(1)
        ).one()
    # 12/29 12/30 12/31, then 2027 counted Monday to Friday: 1/1 1/4 → 2027-01-04.
    assert deadline.isoformat() == "2027-01-04"
    for body in (text, html):
        assert "请于 2027-01-04（含当日）前完成整改" in body
        assert "节假日安排尚未公布，期限按周一至周五计算，为暂定期限" in body
