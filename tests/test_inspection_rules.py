"""Repeat inspections in the evaluation cycle: scoped by enterprise, incremental."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from watchdog.engine.evaluate import EvaluationPass
from watchdog.engine.inspection_rules import evaluate_inspection_rules
from watchdog.engine.rulefiles import load_rules
from watchdog.store import schema

RULES = load_rules(Path(__file__).resolve().parent.parent / "rules").rules
SHANGHAI = ZoneInfo("Asia/Shanghai")
AS_OF = datetime(2026, 6, 30, 10, tzinfo=UTC)


def inspect(
    store: Engine,
    ident: str,
    target: str,
    dept: str,
    day: str,
    seq: int,
    kind: str = "routine",
    group: str | None = None,
) -> None:
    moment = datetime.fromisoformat(f"{day}T10:00:00+08:00")
    with store.begin() as connection:
        connection.execute(
            schema.inspections.insert().values(
                source="county",
                inspection_id=ident,
                target_id=target,
                target_name="某某食品公司",
                dept_code=dept,
                inspected_at=moment,
                kind=kind,
                joint_group=group,
                updated_at=moment,
                change_seq=seq,
            )
        )


def run(store: Engine, since: int | None) -> tuple[int, int]:
    last = None if since is None else datetime(2026, 1, 1, tzinfo=UTC)
    run = EvaluationPass(store, "county", SHANGHAI, AS_OF, True, since=since, last=last)
    result = evaluate_inspection_rules(run, RULES)
    return result.counts.opened, result.counts.resolved


def open_repeats(store: Engine) -> set[tuple[str | None, str | None, str, str | None]]:
    table = schema.violations
    with store.connect() as connection:
        rows = connection.execute(
            select(table.c.case_id, table.c.subject, table.c.scope_key, table.c.dept_code).where(
                table.c.kind == "inspection", table.c.state == "open"
            )
        )
        return {(r.case_id, r.subject, r.scope_key, r.dept_code) for r in rows}


def test_repeats_are_recorded_per_enterprise_and_a_new_inspection_is_judged_incrementally(
    store: Engine,
) -> None:
    inspect(store, "J1", "E1", "SCJG", "2026-03-01", seq=1)
    inspect(store, "J2", "E1", "WJW", "2026-03-31", seq=1)  # 30 days later: a repeat
    inspect(store, "J3", "E2", "SCJG", "2026-03-01", seq=1)
    inspect(store, "J4", "E2", "WJW", "2026-04-01", seq=1)  # 31 days later: not a repeat
    assert run(store, since=None) == (1, 0)
    assert open_repeats(store) == {(None, "J2", "E1", "WJW")}

    # A complaint-triggered visit is exempt; a routine one 10 days after J4 is a repeat.
    inspect(store, "J5", "E2", "ZJJ", "2026-04-05", seq=2, kind="complaint")
    inspect(store, "J6", "E2", "ZJJ", "2026-04-11", seq=2)
    assert run(store, since=1) == (1, 0)
    assert open_repeats(store) == {(None, "J2", "E1", "WJW"), (None, "J6", "E2", "ZJJ")}


def test_a_joint_group_counts_once(store: Engine) -> None:
    for ident, dept in (("K1", "SCJG"), ("K2", "WJW"), ("K3", "XF")):
        inspect(store, ident, "E9", dept, "2026-05-10", seq=1, kind="joint", group="LH-01")
    assert run(store, since=None) == (0, 0)
