"""End to end: a foreign-schema source polled twice, graded on the legal clock, recorded.

The scenario, by hand, on the 2026 calendar (as-of instants in Asia/Shanghai):

cycle 1 at 2026-03-06 18:00
- C1 accepted Mon 3/2, promised 5 W: counted 3/3 3/4 3/5 3/6 3/9 → due 3/9; 1 day left → warning
- C2 the same, open → warning
- C3 accepted 2/10, promised 3, statutory 5: counted 2/11 2/12 2/13 → due 2/13; 2/14 is a
  make-up Saturday (4th), 2/15–2/23 Spring Festival, 2/24 (5th) → statutory due 2/24;
  completed 3/3 → red
- C4 accepted 3/2, promised 5, supplement pause from 3/3 still running → clock stopped
- C5 accepted 3/2, promised 3 natural days → due 3/5; red (no statutory) at 3+5 → 3/10;
  open on 3/6 → yellow
- C6 immediate (limit 0), accepted and completed 3/6 → on time
- C7 never accepted → no clock;  C8 a negative limit → quarantined

cycle 2 at 2026-03-16 18:00, after the department changed things
- C1 still open → past 3/9 → upgraded to yellow
- C2 completed 3/9, on its due date → on time → resolved
- C4 pause ended 3/10: counted 3/11 3/12 3/13 3/16 3/17 → due 3/17; 1 day left → warning
- C5 past 3/10 → upgraded to red
- C9 committed late with updated_at equal to the watermark: accepted 2/2, promised 1 →
  due 2/3, red at the 6th counted day 2/10 → red
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, text

from tests.foreign_source import ForeignSource, postgresql_source, sqlite_source
from watchdog.app import Watchdog
from watchdog.config import load_settings
from watchdog.store import schema

SHANGHAI = ZoneInfo("Asia/Shanghai")
CYCLE_1 = datetime(2026, 3, 6, 18, 0, tzinfo=SHANGHAI)
CYCLE_2 = datetime(2026, 3, 16, 18, 0, tzinfo=SHANGHAI)


def case(projid: str, accepted: str | None, limit: int, **more: Any) -> dict[str, Any]:
    return {
        "PROJID": projid,
        "SXBM": "SC001",
        "SXMC": "食品经营许可证核发",
        "SLBMDM": "SCJGJ",
        "SLBMMC": "东阳县市场监督管理局",
        "SQSJ": accepted or "2026-03-02 09:00:00",
        "SLSJ": accepted,
        "CNSX": limit,
        "CNSXDW": "G",
        "FDSX": None,
        "GXSJ": "2026-03-06 17:00:00",
        **more,
    }


@pytest.fixture
def source(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> ForeignSource:
    if backend == "sqlite":
        return sqlite_source(tmp_path)
    from tests.conftest import _pg_url

    database = request.getfixturevalue("pg_database")
    return postgresql_source(_pg_url(database), f"qzk_{tmp_path.name[-12:].lower()}")


def write_config(tmp_path: Path, source: ForeignSource, store_url: str) -> Path:
    queries = "\n".join(f'{name} = """{sql}"""' for name, sql in source.queries().items())
    rules = Path(__file__).resolve().parent.parent / "rules"
    text = f"""
[store]
url = "{store_url}"

[rules]
dir = "{rules}"

[[sources]]
name = "county"
url = "{source.url}"
poll_interval = "60s"
batch_size = 2

[sources.queries]
{queries}
"""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def violations_by_case(store: Engine) -> dict[str, tuple[str, str]]:
    table = schema.violations
    with store.connect() as connection:
        rows = connection.execute(select(table.c.case_id, table.c.severity, table.c.state))
        return {row.case_id: (row.severity, row.state) for row in rows}


def events_of(store: Engine, case_id: str) -> list[tuple[str, str | None, str | None]]:
    v, e = schema.violations, schema.violation_events
    with store.connect() as connection:
        rows = connection.execute(
            select(e.c.event, e.c.severity_to, e.c.reason)
            .join(v, v.c.id == e.c.violation_id)
            .where(v.c.case_id == case_id)
            .order_by(e.c.id)
        )
        return [(row.event, row.severity_to, row.reason) for row in rows]


def test_a_foreign_source_polled_twice_gives_the_hand_worked_violations(
    source: ForeignSource, store: Engine, store_url: str, tmp_path: Path
) -> None:
    source.upsert("SP_BJXX", case("C1", "2026-03-02 10:00:00", 5))
    source.upsert("SP_BJXX", case("C2", "2026-03-02 10:00:00", 5))
    source.upsert(
        "SP_BJXX",
        case("C3", "2026-02-10 10:00:00", 3, FDSX=5, BJSJ="2026-03-03 11:00:00", BJJG="1"),
    )
    source.upsert("SP_BJXX", case("C4", "2026-03-02 10:00:00", 5))
    source.upsert("SP_BJXX", case("C5", "2026-03-02 10:00:00", 3, CNSXDW="Z"))
    source.upsert(
        "SP_BJXX", case("C6", "2026-03-06 09:00:00", 0, BJSJ="2026-03-06 09:30:00", BJJG="1")
    )
    source.upsert("SP_BJXX", case("C7", None, 5))
    source.upsert("SP_BJXX", case("C8", "2026-03-02 10:00:00", -1))
    source.upsert(
        "SP_TBCX",
        {
            "TBCXID": "T4",
            "PROJID": "C4",
            "TBCXZL": "F",
            "TBCXKSRQ": "2026-03-03 09:00:00",
            "GXSJ": "2026-03-03 09:00:00",
        },
    )
    source.upsert(
        "SP_HJXX",
        {
            "HJID": "H1",
            "PROJID": "C1",
            "SPHJMC": "受理",
            "BLR": "张伟",
            "JSSJ": "2026-03-02 10:00:00",
            "GXSJ": "2026-03-02 10:00:00",
        },
    )
    now = [CYCLE_1]
    watchdog = Watchdog(
        load_settings(write_config(tmp_path, source, store_url)), store, clock=lambda: now[0]
    )

    first = watchdog.run_cycle("county")
    assert first.error is None, first.error
    assert first.poll is not None and first.poll.rows_quarantined == 1
    assert violations_by_case(store) == {
        "C1": ("warning", "open"),
        "C2": ("warning", "open"),
        "C3": ("red", "open"),
        "C5": ("yellow", "open"),
    }

    # The department works on: C2 completes on its due date, C4's pause ends, and a
    # late transaction commits C9 with the same updated_at as the newest row already read.
    source.upsert(
        "SP_BJXX",
        case(
            "C2",
            "2026-03-02 10:00:00",
            5,
            BJSJ="2026-03-09 16:00:00",
            BJJG="1",
            GXSJ="2026-03-09 16:00:00",
        ),
    )
    source.upsert(
        "SP_TBCX",
        {
            "TBCXID": "T4",
            "PROJID": "C4",
            "TBCXZL": "F",
            "TBCXKSRQ": "2026-03-03 09:00:00",
            "TBCXJSRQ": "2026-03-10 17:00:00",
            "GXSJ": "2026-03-10 17:00:00",
        },
    )
    source.upsert("SP_BJXX", case("C9", "2026-02-02 10:00:00", 1))
    now[0] = CYCLE_2

    second = watchdog.run_cycle("county")
    assert second.error is None, second.error
    assert violations_by_case(store) == {
        "C1": ("yellow", "open"),
        "C2": ("warning", "resolved"),
        "C3": ("red", "open"),
        "C4": ("warning", "open"),
        "C5": ("red", "open"),
        "C9": ("red", "open"),
    }
    assert second.evaluation is not None
    counts = second.evaluation.counts
    assert (counts.opened, counts.upgraded, counts.resolved) == (2, 2, 1)
    assert events_of(store, "C1") == [("opened", "warning", None), ("upgraded", "yellow", None)]
    assert events_of(store, "C2") == [
        ("opened", "warning", None),
        ("resolved", None, "completed on 2026-03-09, on time (due 2026-03-09)"),
    ]

    with store.connect() as connection:
        c3 = connection.execute(
            select(schema.violations.c.evidence, schema.violations.c.due_date).where(
                schema.violations.c.case_id == "C3"
            )
        ).one()
        quarantined = connection.execute(select(schema.quarantine)).one()
    assert c3.due_date.isoformat() == "2026-02-13"
    assert c3.evidence["statutory_due_date"] == "2026-02-24"
    assert c3.evidence["completed_on"] == "2026-03-03"
    assert quarantined.row_key == "C8"
    assert quarantined.reason == "promised_limit: negative limit -1"
    assert quarantined.times_seen == 2  # re-read in the overlap, not duplicated
    watchdog.close()


def test_a_third_cycle_without_source_changes_changes_nothing(
    source: ForeignSource, store: Engine, store_url: str, tmp_path: Path
) -> None:
    source.upsert("SP_BJXX", case("C1", "2026-03-02 10:00:00", 5))
    watchdog = Watchdog(
        load_settings(write_config(tmp_path, source, store_url)), store, clock=lambda: CYCLE_2
    )
    first = watchdog.run_cycle("county")
    again = watchdog.run_cycle("county")
    assert first.poll is not None and first.poll.rows_changed == 1
    assert again.poll is not None and again.poll.rows_changed == 0
    assert again.evaluation is not None
    counts = again.evaluation.counts
    assert (counts.opened, counts.upgraded, counts.resolved) == (0, 0, 0)
    watchdog.close()


def step(hjid: str, projid: str, name: str, finished: str, handler: str) -> dict[str, Any]:
    return {
        "HJID": hjid,
        "PROJID": projid,
        "SPHJMC": name,
        "BLR": handler,
        "JSSJ": finished,
        "GXSJ": finished,
    }


def test_procedure_findings_follow_the_steps_as_they_change(
    source: ForeignSource, store: Engine, store_url: str, tmp_path: Path
) -> None:
    # P1: accepted, then 批准 by the same person who will later do 承办, with 承办 missing.
    source.upsert("SP_BJXX", case("P1", "2026-03-02 10:00:00", 20))
    source.upsert("SP_HJXX", step("S1", "P1", "受理", "2026-03-02 10:00:00", "王芳"))
    source.upsert("SP_HJXX", step("S3", "P1", "批准", "2026-03-04 10:00:00", "李强"))
    now = [CYCLE_1]
    watchdog = Watchdog(
        load_settings(write_config(tmp_path, source, store_url)), store, clock=lambda: now[0]
    )
    assert watchdog.run_cycle("county").error is None

    def procedure_violations() -> set[tuple[str, str, str]]:
        table = schema.violations
        with store.connect() as connection:
            rows = connection.execute(
                select(table.c.finding, table.c.subject, table.c.state).where(
                    table.c.kind == "procedure"
                )
            )
            return {(r.finding, r.subject, r.state) for r in rows}

    assert procedure_violations() == {("step_missing", "review", "open")}

    # The department records 承办 afterwards, dated after 批准, by the approver himself.
    source.upsert("SP_HJXX", step("S2", "P1", "承办", "2026-03-05 10:00:00", "李强"))
    now[0] = CYCLE_2
    assert watchdog.run_cycle("county").error is None
    assert procedure_violations() == {
        ("step_missing", "review", "resolved"),
        ("out_of_order", "decide", "open"),
        ("same_handler", "review,decide", "open"),
    }
    watchdog.close()


def test_a_failing_rule_pass_is_reported_and_the_other_rules_still_record(
    source: ForeignSource, store: Engine, store_url: str, tmp_path: Path
) -> None:
    source.upsert("SP_BJXX", case("C1", "2026-03-02 10:00:00", 5))
    watchdog = Watchdog(
        load_settings(write_config(tmp_path, source, store_url)), store, clock=lambda: CYCLE_1
    )
    with store.begin() as connection:  # the fault: a table the fee rule reads is gone
        connection.execute(text("DROP TABLE fees"))
    report = watchdog.run_cycle("county")
    assert report.error is None
    assert report.evaluation is not None
    (error,) = report.evaluation.errors
    assert error.startswith("procedure and fee rules: ")
    assert "rule errors: procedure and fee rules:" in report.summary()
    assert violations_by_case(store) == {"C1": ("warning", "open")}  # overdue still recorded
    with store.connect() as connection:
        evaluated = connection.scalar(select(schema.source_state.c.evaluated_seq))
    assert evaluated == 0  # not marked: the next cycle looks at the same changes again
    watchdog.close()


def test_an_edited_rule_file_takes_effect_at_the_next_cycle(
    source: ForeignSource,
    store: Engine,
    store_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).resolve().parent.parent / "rules", rules)
    config = write_config(tmp_path, source, store_url)
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            f'dir = "{Path(__file__).resolve().parent.parent / "rules"}"', 'dir = "rules"'
        ),
        encoding="utf-8",
    )
    # Accepted Mon 3/2 with a promised limit of 5: due 3/9; on 3/4 three days remain
    # (3/5, 3/6, 3/9), so no warning at 2 days but a warning at 3.
    source.upsert("SP_BJXX", case("C1", "2026-03-02 10:00:00", 5))
    # C2, completed before the first cycle, skipped 承办: the procedure rule is not in
    # force yet, so only a full pass after the edit can find it.
    source.upsert(
        "SP_BJXX", case("C2", "2026-03-02 10:00:00", 5, BJSJ="2026-03-03 10:00:00", BJJG="1")
    )
    source.upsert("SP_HJXX", step("S21", "C2", "受理", "2026-03-02 10:00:00", "王芳"))
    source.upsert("SP_HJXX", step("S22", "C2", "批准", "2026-03-03 09:00:00", "李强"))
    procedure = rules / "procedure.toml"
    text = procedure.read_text(encoding="utf-8")
    procedure.write_text(text.replace("in_force_from = 2020", "in_force_from = 2027"), "utf-8")
    moment = datetime(2026, 3, 4, 18, 0, tzinfo=SHANGHAI)
    watchdog = Watchdog(load_settings(config), store, clock=lambda: moment)
    assert watchdog.run_cycle("county").error is None
    assert violations_by_case(store) == {}
    procedure.write_text(text, encoding="utf-8")
    overdue = rules / "overdue.toml"
    overdue.write_text(
        overdue.read_text(encoding="utf-8").replace("warning_days = 2", "warning_days = 3"),
        encoding="utf-8",
    )
    with caplog.at_level("WARNING", logger="watchdog.app"):
        assert watchdog.run_cycle("county").error is None
    assert violations_by_case(store) == {"C1": ("warning", "open"), "C2": ("red", "open")}
    assert "rules reloaded from" in caplog.text
    assert "changed overdue, procedure, removed none" in caplog.text
    watchdog.close()
