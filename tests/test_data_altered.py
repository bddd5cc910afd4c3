"""Altered source data: a revision that would clear a recorded violation is reported.

The scenario (2026 calendar, Asia/Shanghai), on the foreign-schema source:

cycle 1 at Mon 3/16 18:00
- C1 accepted Mon 3/2 10:00, promised 5 W: due 3/9, open → yellow (overdue)
- C4 accepted Tue 3/10, promised 5 W: counted 3/11 3/12 3/13 3/16 3/17 → due 3/17;
  1 day left → warning
- step H1 of C1 (受理) handled by 张伟

between the cycles the department edits its data:
- C1's 受理时间 moved to Mon 3/16 10:00: due 3/23, 4 days left on 3/17 → no finding
- C4 completed 3/17 09:00, on its due date (filling in a completion is not a revision)
- H1's handler changed to 李娜 (a revision, but it weakens no violation)

cycle 2 at Tue 3/17 18:00
- C1's overdue violation stays open, contested by the accepted_at revision; a
  data_altered finding (red) reports it; C4's warning resolves as usual.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from tests.foreign_source import ForeignSource, backend_source
from tests.test_end_to_end import case, write_config
from watchdog.app import Watchdog
from watchdog.clock import Severity
from watchdog.config import load_settings
from watchdog.engine.rulefiles import load_rules
from watchdog.sources.entities import ENTITIES
from watchdog.sources.writer import Batch, BatchWriter
from watchdog.store import schema
from watchdog.store.encoding import encoding_for

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
CYCLE_1 = datetime(2026, 3, 16, 18, 0, tzinfo=SHANGHAI)
CYCLE_2 = datetime(2026, 3, 17, 18, 0, tzinfo=SHANGHAI)
CYCLE_3 = datetime(2026, 3, 18, 18, 0, tzinfo=SHANGHAI)


@pytest.fixture
def county(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> ForeignSource:
    return backend_source(backend, tmp_path, request, "alt")


def step(handler: str, updated: str) -> dict[str, Any]:
    return {
        "HJID": "H1",
        "PROJID": "C1",
        "SPHJMC": "受理",
        "BLR": handler,
        "JSSJ": "2026-03-02 10:00:00",
        "GXSJ": updated,
    }


def violations(store: Engine) -> dict[tuple[str, str], Any]:
    table = schema.violations
    with store.connect() as connection:
        return {(row.case_id, row.kind): row for row in connection.execute(select(table))}


def events(store: Engine, violation_id: int) -> list[Any]:
    table = schema.violation_events
    with store.connect() as connection:
        return list(
            connection.execute(
                select(table).where(table.c.violation_id == violation_id).order_by(table.c.id)
            )
        )


def revisions(store: Engine) -> list[Any]:
    table = schema.source_revisions
    with store.connect() as connection:
        return list(connection.execute(select(table).order_by(table.c.id)))


def test_accepted_at_moved_later_keeps_the_overdue_violation_contested_and_reports_it(
    county: ForeignSource, store: Engine, store_url: str, tmp_path: Path
) -> None:
    county.upsert("SP_BJXX", case("C1", "2026-03-02 10:00:00", 5))
    county.upsert("SP_BJXX", case("C4", "2026-03-10 10:00:00", 5))
    county.upsert("SP_HJXX", step("张伟", "2026-03-02 10:00:00"))
    now = [CYCLE_1]
    watchdog = Watchdog(
        load_settings(write_config(tmp_path, county, store_url)), store, clock=lambda: now[0]
    )
    first = watchdog.run_cycle("county")
    assert first.error is None, first.error
    assert first.poll is not None and first.poll.revisions == 0  # a first load compares nothing
    before = violations(store)
    assert {key: (row.severity, row.state) for key, row in before.items()} == {
        ("C1", "overdue"): ("yellow", "open"),
        ("C4", "overdue"): ("warning", "open"),
    }

    county.upsert(
        "SP_BJXX",
        case(
            "C1", "2026-03-16 10:00:00", 5, SQSJ="2026-03-02 10:00:00", GXSJ="2026-03-17 08:00:00"
        ),
    )
    county.upsert(
        "SP_BJXX",
        case(
            "C4", "2026-03-10 10:00:00", 5, BJSJ="2026-03-17 09:00:00", GXSJ="2026-03-17 09:00:00"
        ),
    )
    county.upsert("SP_HJXX", step("李娜", "2026-03-17 08:30:00"))
    now[0] = CYCLE_2
    second = watchdog.run_cycle("county")
    assert second.error is None, second.error
    assert second.poll is not None and second.poll.revisions == 2

    # The source change is kept: old and new value, the row, the poll that saw it.
    stored = revisions(store)
    assert [
        (r.entity, r.row_key, r.case_id, r.field, r.old_value, r.new_value) for r in stored
    ] == [
        (
            "cases",
            "C1",
            "C1",
            "accepted_at",
            "2026-03-02T02:00:00+00:00",
            "2026-03-16T02:00:00+00:00",
        ),
        ("steps", "H1", "C1", "handler_id", "张伟", "李娜"),
    ]
    accepted = stored[0]
    assert accepted.poll == second.poll.seq

    after = violations(store)
    overdue = after[("C1", "overdue")]
    # Not silently resolved: open, its grade and evidence as recorded, contested.
    assert (overdue.state, overdue.severity) == ("open", "yellow")
    assert overdue.resolved_at is None
    assert overdue.contested_by_revision == accepted.id
    assert overdue.contested_at == CYCLE_2
    assert overdue.evidence == before[("C1", "overdue")].evidence
    history = events(store, overdue.id)
    assert [(e.event, e.severity_from, e.severity_to) for e in history] == [
        ("opened", None, "yellow"),
        ("contested", "yellow", None),
    ]
    assert f"source revision {accepted.id}: cases.accepted_at of C1" in history[1].reason
    assert history[1].evidence["revision_id"] == accepted.id

    # Completing a case on time is no alteration: its warning resolves as ever.
    c4 = after[("C4", "overdue")]
    assert (c4.state, c4.contested_by_revision) == ("resolved", None)

    altered = after[("C1", "data_altered")]
    assert (altered.finding, altered.subject, altered.severity, altered.state) == (
        "data_altered",
        "cases.accepted_at",
        "red",
        "open",
    )
    assert altered.rule_id == "data-altered"
    assert altered.dept_code == "SCJGJ"
    evidence = altered.evidence
    assert (evidence["old_value"], evidence["new_value"]) == (
        "2026-03-02 10:00",
        "2026-03-16 10:00",
    )
    assert evidence["revision_id"] == accepted.id
    assert [w["violation_id"] for w in evidence["weakens"]] == [overdue.id]
    assert evidence["weakens"][0]["severity_after_change"] is None
    assert "受理时间" in evidence["summary"] and "不再成立" in evidence["summary"]
    # The handler revision weakened nothing, so it raised nothing.
    assert {key for key in after if key[1] == "data_altered"} == {("C1", "data_altered")}
    assert second.evaluation is not None
    counts = second.evaluation.counts
    assert (counts.opened, counts.resolved, counts.contested) == (1, 1, 1)

    # Later cycles, incremental or full, leave it all as it is: the contest is recorded,
    # not re-decided, and a contested violation is never resolved by the changed data.
    now[0] = CYCLE_3
    third = watchdog.run_cycle("county")
    assert third.error is None and third.evaluation is not None
    full = watchdog.evaluate("county", CYCLE_3, record=True, full=True)
    for result in (third.evaluation, full):
        counts = result.counts
        assert (counts.opened, counts.upgraded, counts.resolved, counts.contested) == (0, 0, 0, 0)
    assert {k: (r.state, r.contested_by_revision) for k, r in violations(store).items()} == {
        k: (r.state, r.contested_by_revision) for k, r in after.items()
    }
    dry = watchdog.evaluate("county", CYCLE_3, record=False)
    assert [f.subject for f in dry.findings if f.kind == "data_altered"] == ["cases.accepted_at"]
    watchdog.close()


def test_a_milder_verdict_after_a_revision_is_contested_with_the_grade_it_would_have(
    county: ForeignSource, store: Engine, store_url: str, tmp_path: Path
) -> None:
    """C1 yellow on 3/16; accepted_at moved to 3/12: due 3/19, 2 days left on 3/17 →
    only a warning. The violation keeps its yellow grade and evidence, contested."""
    county.upsert("SP_BJXX", case("C1", "2026-03-02 10:00:00", 5))
    now = [CYCLE_1]
    watchdog = Watchdog(
        load_settings(write_config(tmp_path, county, store_url)), store, clock=lambda: now[0]
    )
    assert watchdog.run_cycle("county").error is None
    county.upsert("SP_BJXX", case("C1", "2026-03-12 10:00:00", 5, GXSJ="2026-03-17 08:00:00"))
    now[0] = CYCLE_2
    assert watchdog.run_cycle("county").error is None

    overdue = violations(store)[("C1", "overdue")]
    assert (overdue.state, overdue.severity) == ("open", "yellow")
    assert overdue.evidence["due_date"] == "2026-03-09"  # the evidence as recorded
    history = events(store, overdue.id)
    assert [(e.event, e.severity_from, e.severity_to) for e in history] == [
        ("opened", None, "yellow"),
        ("contested", "yellow", "warning"),
    ]
    assert history[1].evidence["found_now"]["due_date"] == "2026-03-19"
    altered = violations(store)[("C1", "data_altered")]
    assert altered.evidence["weakens"][0]["severity_after_change"] == "warning"
    assert "降为预警" in altered.evidence["summary"]
    watchdog.close()


def test_an_unchanged_reread_and_a_filled_in_completion_are_no_revisions(
    county: ForeignSource, store: Engine, store_url: str, tmp_path: Path
) -> None:
    county.upsert("SP_BJXX", case("C1", "2026-03-02 10:00:00", 5))
    watchdog = Watchdog(
        load_settings(write_config(tmp_path, county, store_url)), store, clock=lambda: CYCLE_1
    )
    assert watchdog.run_cycle("county").error is None
    # Touched (new updated_at) with the same content, then completed: neither is one.
    county.upsert("SP_BJXX", case("C1", "2026-03-02 10:00:00", 5, GXSJ="2026-03-16 09:00:00"))
    assert watchdog.run_cycle("county").error is None
    county.upsert(
        "SP_BJXX",
        case(
            "C1", "2026-03-02 10:00:00", 5, BJSJ="2026-03-16 11:00:00", GXSJ="2026-03-16 11:00:00"
        ),
    )
    assert watchdog.run_cycle("county").error is None
    assert revisions(store) == []
    # Changing a completion once given is one.
    county.upsert(
        "SP_BJXX",
        case(
            "C1", "2026-03-02 10:00:00", 5, BJSJ="2026-03-09 11:00:00", GXSJ="2026-03-16 12:00:00"
        ),
    )
    report = watchdog.run_cycle("county")
    assert report.poll is not None and report.poll.revisions == 1
    assert [(r.field, r.old_value, r.new_value) for r in revisions(store)] == [
        ("completed_at", "2026-03-16T03:00:00+00:00", "2026-03-09T03:00:00+00:00")
    ]
    watchdog.close()


def test_a_fee_amount_changed_is_kept_in_one_form_on_both_stores(store: Engine) -> None:
    """Amounts are floats on SQLite and decimals on PostgreSQL; a revision reads the same."""
    encoding = encoding_for(store.dialect.name)
    charged = encoding.timestamp(datetime(2026, 3, 2, 2, 0))
    entity = ENTITIES["fees"]

    def fee(fee_id: str, amount: str, poll: int) -> tuple[Any, ...]:
        updated = encoding.timestamp(datetime(2026, 3, 2, 2, poll))
        value = encoding.decimal(Decimal(amount))
        return ("county", fee_id, "C1", "FS-001", "登记费", value, charged, updated, poll)

    def write(rows: list[tuple[Any, ...]], *, revisions: bool) -> int:
        writer = BatchWriter(store, "county", entity, encoding, CYCLE_1, revisions=revisions)
        with writer:
            writer.put(Batch(rows=rows, newest=rows[-1][-2], read=len(rows)))
        return 0 if writer.revisions is None else writer.revisions.recorded

    assert write([fee("F1", "80", 1), fee("F2", "50.5", 1)], revisions=False) == 0
    # F2 re-read as it was; F1's amount raised; F3 new (nothing to compare).
    assert (
        write([fee("F1", "120.00", 2), fee("F2", "50.50", 2), fee("F3", "9", 2)], revisions=True)
        == 1
    )
    assert [
        (r.entity, r.row_key, r.field, r.old_value, r.new_value, r.poll) for r in revisions(store)
    ] == [("fees", "F1", "amount", "80.00", "120.00", 2)]


def test_the_rule_names_only_fields_the_poller_keeps_revisions_of(tmp_path: Path) -> None:
    shipped = (ROOT / "rules" / "data_altered.toml").read_text(encoding="utf-8")
    (tmp_path / "data_altered.toml").write_text(
        shipped.replace("fields = []", 'fields = ["cases.accepted"]'), encoding="utf-8"
    )
    rules = load_rules(tmp_path)
    assert rules.rules == ()
    assert rules.problems[0].startswith(
        "data_altered.toml: rules[0].params: fields: unknown field 'cases.accepted' (known: "
    )
    (rule,) = load_rules(ROOT / "rules").of_kind("data_altered")
    assert rule.severity_of("data_altered") == Severity.RED
    assert rule.prepared == frozenset()  # every deciding field raises a finding
