"""Issuing notices through real recording cycles on hand-made cases.

The cases, on the 2026 calendar (instants in Asia/Shanghai):

- C1 (SCJGJ, which has two contacts) accepted Mon 3/2, promised 5 working days,
  statutory 10: due 3/9, statutory due 3/16. On 3/11 it is 2 days late → yellow;
  on 3/18 past the statutory due date → red.
- C2 (ZJJ, no contacts) accepted 3/2, promised 3: due 3/5 → yellow on 3/11; without a
  statutory limit red past the 5th counted day after it (3/12) → red on 3/18.
- C3 (SCJGJ) accepted 3/2, promised 4: due 3/6 → yellow on 3/11, red past 3/13.

Notice deadlines: issued 3/11 + 10 working days → 3/25; issued 3/18 + 5 → 3/25.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from tests.foreign_source import ForeignSource, postgresql_source, sqlite_source
from watchdog.app import Watchdog
from watchdog.config import load_settings
from watchdog.store import schema

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = Path(__file__).resolve().parent.parent / "rules"
OFFICE = "jianchake@example.gov.cn"
SCJGJ = ("scj-a@example.gov.cn", "scj-b@example.gov.cn")

NOTICES = f"""
[notices]
enabled = true
supervision_office = ["{OFFICE}"]
leadership = ["lingdao@example.gov.cn"]
[notices.contacts]
SCJGJ = ["{SCJGJ[0]}", "{SCJGJ[1]}"]
[notices.escalation]
SCJGJ = ["fgld@example.gov.cn"]
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def case(projid: str, dept: str, limit: int, statutory: int | None = None) -> dict[str, Any]:
    return {
        "PROJID": projid,
        "SXBM": "SC001",
        "SXMC": "食品经营许可证核发",
        "SLBMDM": dept,
        "SLBMMC": {"SCJGJ": "东阳县市场监督管理局", "ZJJ": "东阳县住房和城乡建设局"}[dept],
        "SQSJ": "2026-03-02 09:00:00",
        "SLSJ": "2026-03-02 10:00:00",
        "CNSX": limit,
        "CNSXDW": "G",
        "FDSX": statutory,
        "GXSJ": "2026-03-02 10:00:00",
    }


@pytest.fixture
def source(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> ForeignSource:
    if backend == "sqlite":
        return sqlite_source(tmp_path)
    from tests.conftest import _pg_url

    database = request.getfixturevalue("pg_database")
    return postgresql_source(_pg_url(database), f"qzk_{tmp_path.name[-12:].lower()}")


def write_config(
    tmp_path: Path, source_url: str, queries: dict[str, str], store_url: str, notices: str
) -> Path:
    text = "\n".join(f'{name} = """{sql}"""' for name, sql in queries.items())
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[store]
url = "{store_url}"

[rules]
dir = "{RULES}"

[[sources]]
name = "county"
url = "{source_url}"

[sources.queries]
{text}
{notices}
""",
        encoding="utf-8",
    )
    return path


class Cycles:
    """A watchdog on the test's source and store whose clock the test sets."""

    def __init__(self, config: Path, store: Engine) -> None:
        self.now = at("2026-03-11T18:00:00")
        self.watchdog = Watchdog(load_settings(config), store, clock=lambda: self.now)

    def run(self, when: str) -> None:
        self.now = at(when)
        report = self.watchdog.run_cycle("county")
        assert report.error is None, report.error


@pytest.fixture
def cycles_factory(
    source: ForeignSource, store: Engine, store_url: str, tmp_path: Path
) -> Iterator[Callable[[str], Cycles]]:
    made: list[Cycles] = []

    def make(notices: str) -> Cycles:
        config = write_config(tmp_path, source.url, source.queries(), store_url, notices)
        cycles = Cycles(config, store)
        made.append(cycles)
        return cycles

    yield make
    for cycles in made:
        for poller in cycles.watchdog._pollers.values():
            poller.source_engine.dispose()


def notices_of(store: Engine) -> list[Any]:
    n = schema.notices
    with store.connect() as connection:
        return list(connection.execute(select(n).order_by(n.c.id)).all())


def deliveries_of(store: Engine, notice_id: int) -> list[tuple[str, str, str, int, bool]]:
    d = schema.deliveries
    with store.connect() as connection:
        rows = connection.execute(
            select(d).where(d.c.notice_id == notice_id).order_by(d.c.id)
        ).all()
    return [(r.recipient, r.role, r.state, r.attempts, r.permanent) for r in rows]


def linked_cases(store: Engine, notice_id: int) -> list[str]:
    v, nv = schema.violations, schema.notice_violations
    with store.connect() as connection:
        rows = connection.execute(
            select(v.c.case_id)
            .join(nv, nv.c.violation_id == v.c.id)
            .where(nv.c.notice_id == notice_id)
            .order_by(v.c.case_id)
        )
        return [row.case_id for row in rows]


def test_a_yellow_case_gets_one_numbered_notice_and_an_upgrade_a_second_referring_to_it(
    source: ForeignSource, store: Engine, cycles_factory: Callable[[str], Cycles]
) -> None:
    source.upsert("SP_BJXX", case("C1", "SCJGJ", 5, statutory=10))
    cycles = cycles_factory(NOTICES)
    cycles.run("2026-03-11T18:00:00")

    (first,) = notices_of(store)
    assert first.number == "JC-2026-000001"
    assert (first.kind, first.state, first.severity) == ("rectification", "issued", "yellow")
    assert (first.dept_code, first.dept_name) == ("SCJGJ", "东阳县市场监督管理局")
    assert first.deadline.isoformat() == "2026-03-25"
    assert first.issued_at == at("2026-03-11T18:00:00")
    assert linked_cases(store, first.id) == ["C1"]
    assert deliveries_of(store, first.id) == [
        (SCJGJ[0], "to", "pending", 0, False),
        (SCJGJ[1], "to", "pending", 0, False),
        (OFFICE, "cc", "pending", 0, False),
    ]
    d = schema.deliveries
    with store.connect() as connection:
        times = connection.execute(select(d.c.next_attempt_at, d.c.created_at)).all()
    assert set(times) == {(first.issued_at, first.issued_at)}
    # The stored content is the record of what was sent: Chinese, with the evidence.
    assert first.subject.startswith("整改通知书 JC-2026-000001：东阳县市场监督管理局")
    assert "办件编号：C1" in first.body_text and "<td>C1</td>" in first.body_html
    for piece in (
        "食品经营许可证核发（SC001）",
        "办件超期",
        "《中华人民共和国行政许可法》第四十二条",
        "该件受理于 2026-03-02，承诺时限 5 个工作日，应办结日期 2026-03-09。",
        "法定时限 10 个工作日，法定办结日期 2026-03-16。",
        "截至 2026-03-11 尚未办结，已超期 2 个工作日。",
        "请于 2026-03-25（含当日）前完成整改",
        "回复方式",
    ):
        assert piece in first.body_text, piece
        assert piece in first.body_html, piece

    cycles.run("2026-03-12T18:00:00")  # still yellow: nothing new
    assert len(notices_of(store)) == 1

    cycles.run("2026-03-18T18:00:00")
    first, second = notices_of(store)
    assert second.number == "JC-2026-000002"
    assert (second.severity, second.refers_to_id) == ("red", first.id)
    assert second.deadline.isoformat() == "2026-03-25"  # 5 working days for red
    assert linked_cases(store, second.id) == ["C1"]
    assert "JC-2026-000001" in second.body_text and "红牌" in second.subject
    assert first.state == "issued"  # the first notice keeps its own lifecycle


def test_a_department_without_contacts_sends_to_the_supervision_office_with_a_line_saying_so(
    source: ForeignSource, store: Engine, cycles_factory: Callable[[str], Cycles]
) -> None:
    source.upsert("SP_BJXX", case("C2", "ZJJ", 3))
    cycles = cycles_factory(NOTICES)
    cycles.run("2026-03-11T18:00:00")
    (notice,) = notices_of(store)
    assert deliveries_of(store, notice.id) == [(OFFICE, "to", "pending", 0, False)]
    line = "东阳县住房和城乡建设局（部门编码 ZJJ）未在监察系统登记联系人，本通知书发送至监察机关"
    assert line in notice.body_text and line in notice.body_html
    e = schema.notice_events
    with store.connect() as connection:
        (event,) = connection.execute(select(e).where(e.c.notice_id == notice.id)).all()
    assert (event.event, event.state_to, event.actor) == ("issued", "issued", "watchdog")
    assert "ZJJ has no contacts" in (event.detail or "")


def test_the_daily_digest_issues_one_notice_per_department_at_the_set_time_once(
    source: ForeignSource, store: Engine, cycles_factory: Callable[[str], Cycles]
) -> None:
    for row in (
        case("C1", "SCJGJ", 5, statutory=10),
        case("C2", "ZJJ", 3),
        case("C3", "SCJGJ", 4),
    ):
        source.upsert("SP_BJXX", row)
    cycles = cycles_factory(
        NOTICES.replace(
            "enabled = true", 'enabled = true\npolicy = "daily_digest"\ndigest_at = "17:30"'
        )
    )
    cycles.run("2026-03-11T15:00:00")
    assert notices_of(store) == []  # recorded, not noticed: the digest is at 17:30
    cycles.run("2026-03-11T17:00:00")
    assert notices_of(store) == []

    cycles.run("2026-03-11T17:45:00")
    notices = notices_of(store)
    assert [(n.dept_code, n.severity) for n in notices] == [("SCJGJ", "yellow"), ("ZJJ", "yellow")]
    assert linked_cases(store, notices[0].id) == ["C1", "C3"]
    assert linked_cases(store, notices[1].id) == ["C2"]
    assert "2 项问题" in notices[0].subject
    assert "办件编号：C1" in notices[0].body_text and "办件编号：C3" in notices[0].body_text

    cycles.run("2026-03-11T18:30:00")  # the same day's digest is not issued twice
    assert len(notices_of(store)) == 2

    cycles.run("2026-03-18T09:00:00")  # all three turned red; today's digest is at 17:30
    assert len(notices_of(store)) == 2
    cycles.run("2026-03-18T17:30:00")
    notices = notices_of(store)
    assert [(n.dept_code, n.severity, n.refers_to_id) for n in notices[2:]] == [
        ("SCJGJ", "red", notices[0].id),
        ("ZJJ", "red", notices[1].id),
    ]
    assert linked_cases(store, notices[2].id) == ["C1", "C3"]
    assert notices[2].deadline.isoformat() == "2026-03-25"


def test_a_failing_listener_rolls_back_the_violations_it_heard_about(
    source: ForeignSource,
    store: Engine,
    tmp_path: Path,
    cycles_factory: Callable[[str], Cycles],
) -> None:
    # A template that only fails for case C9: it passes the check at start, then fails
    # while the listener issues C9's notice, inside the transaction recording C9.
    templates = tmp_path / "templates"
    templates.mkdir()
    shipped = (RULES.parent / "watchdog/notices/templates/body.txt.j2").read_text("utf-8")
    (templates / "body.txt.j2").write_text(
        '{% if items[0].case_id == "C9" %}{{ no_such_variable }}{% endif %}' + shipped,
        encoding="utf-8",
    )
    source.upsert("SP_BJXX", case("C9", "SCJGJ", 3))
    cycles = cycles_factory(
        NOTICES.replace("enabled = true", 'enabled = true\ntemplates = "templates"')
    )
    report = cycles.watchdog.run_cycle("county")
    assert report.evaluation is not None
    assert any("no_such_variable" in error for error in report.evaluation.errors)
    with store.connect() as connection:
        violations = connection.execute(select(func.count()).select_from(schema.violations))
        assert violations.scalar_one() == 0
        counters = connection.execute(select(func.count()).select_from(schema.notice_counters))
        assert counters.scalar_one() == 0  # the drawn number went back with the rest
    assert notices_of(store) == []
