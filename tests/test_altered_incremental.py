"""The data-altered pass is incremental: it rebuilds only the scope keys whose
violations changed since its last pass, and agrees with a full pass.

The scenario (2026 calendar, Asia/Shanghai), on the foreign-schema source, as in
`tests/test_data_altered.py`:

cycle 1 at Mon 3/16 18:00
- C1 accepted Mon 3/2 10:00, promised 5 W: due 3/9 → yellow (overdue)
- C2 accepted Mon 3/2 10:00, promised 5 W: yellow as well (red on 3/17, unrevised)

between the cycles C1's 受理时间 moves to Thu 3/12 10:00: due 3/19, 2 days left on 3/17

cycle 2 at Tue 3/17 18:00
- C1's overdue violation would be only a warning: it stays yellow, contested, and a
  data_altered finding reports it (weakening a yellow violation)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select, update

from tests.foreign_source import ForeignSource, backend_source
from tests.test_end_to_end import case, write_config
from watchdog.app import Watchdog
from watchdog.config import load_settings
from watchdog.engine.evaluate import EvaluationResult
from watchdog.store import schema

SHANGHAI = ZoneInfo("Asia/Shanghai")
CYCLE_1 = datetime(2026, 3, 16, 18, 0, tzinfo=SHANGHAI)
CYCLE_2 = datetime(2026, 3, 17, 18, 0, tzinfo=SHANGHAI)
CYCLE_3 = datetime(2026, 3, 18, 18, 0, tzinfo=SHANGHAI)
# 5 working days past the new due date (3/19): red by the clock, no row changed.
RED_DAY = datetime(2026, 3, 31, 18, 0, tzinfo=SHANGHAI)
RULE = "data-altered"


@pytest.fixture
def county(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> ForeignSource:
    return backend_source(backend, tmp_path, request, "inc")


def violations(store: Engine) -> dict[tuple[str, str], Any]:
    table = schema.violations
    with store.connect() as connection:
        return {(row.case_id, row.kind): row for row in connection.execute(select(table))}


def recorded(store: Engine) -> dict[tuple[str, str], tuple[Any, ...]]:
    """What a pass may change of each violation; the evidence of data_altered ones (an
    overdue violation's evidence, days counted, is refreshed when its case is looked at)."""
    return {
        key: (
            row.state,
            row.severity,
            row.contested_by_revision,
            row.evidence if row.kind == "data_altered" else None,
        )
        for key, row in violations(store).items()
    }


def applied(result: EvaluationResult | None) -> int:
    assert result is not None and not result.errors, result and result.errors
    return result.stats(RULE).applied


def counted(result: EvaluationResult | None) -> tuple[int, int, int, int]:
    assert result is not None and not result.errors, result and result.errors
    counts = result.counts
    return counts.opened, counts.upgraded, counts.resolved, counts.contested


def contested_watchdog(county: ForeignSource, store: Engine, store_url: str, tmp_path: Path) -> Any:
    """A watchdog after cycle 2: C1's overdue violation contested and reported."""
    county.upsert("SP_BJXX", case("C1", "2026-03-02 10:00:00", 5))
    county.upsert("SP_BJXX", case("C2", "2026-03-02 10:00:00", 5))
    now = [CYCLE_1]
    watchdog = Watchdog(
        load_settings(write_config(tmp_path, county, store_url)), store, clock=lambda: now[0]
    )
    assert watchdog.run_cycle("county").error is None
    county.upsert("SP_BJXX", case("C1", "2026-03-12 10:00:00", 5, GXSJ="2026-03-17 08:00:00"))
    now[0] = CYCLE_2
    second = watchdog.run_cycle("county")
    assert second.error is None, second.error
    assert applied(second.evaluation) == 1  # the new contest, rebuilt incrementally
    # Opened: the data_altered finding; upgraded: C2, red by now; contested: C1.
    assert counted(second.evaluation) == (1, 1, 0, 1)
    return watchdog, now


@pytest.fixture
def watchdog_and_clock(
    county: ForeignSource, store: Engine, store_url: str, tmp_path: Path
) -> Iterator[Any]:
    watchdog, now = contested_watchdog(county, store, store_url, tmp_path)
    yield watchdog, now
    watchdog.close()


def test_a_pass_with_nothing_changed_reads_no_contested_violation(
    watchdog_and_clock: Any, store: Engine
) -> None:
    watchdog, now = watchdog_and_clock
    before = recorded(store)
    altered = violations(store)[("C1", "data_altered")]
    assert altered.state == "open"
    assert altered.evidence["weakens"][0]["severity"] == "yellow"

    now[0] = CYCLE_3
    third = watchdog.run_cycle("county")
    assert third.error is None
    assert applied(third.evaluation) == 0
    assert counted(third.evaluation) == (0, 0, 0, 0)
    assert recorded(store) == before

    # A full pass rebuilds the finding from every contested violation, and finds the
    # record as the incremental passes left it.
    full = watchdog.evaluate("county", CYCLE_3, record=True, full=True)
    assert applied(full) == 1
    assert counted(full) == (0, 0, 0, 0)
    assert recorded(store) == before
    # ... and the pass after it is incremental again.
    assert applied(watchdog.run_cycle("county").evaluation) == 0


def test_a_store_without_the_pass_mark_is_rebuilt_in_full_once(
    watchdog_and_clock: Any, store: Engine
) -> None:
    """As after the migration that added the mark: the next pass looks at everything."""
    watchdog, now = watchdog_and_clock
    before = recorded(store)
    with store.begin() as connection:
        connection.execute(update(schema.source_state).values(altered_through_event=None))
    now[0] = CYCLE_3
    assert applied(watchdog.run_cycle("county").evaluation) == 1
    assert applied(watchdog.run_cycle("county").evaluation) == 0
    assert recorded(store) == before


def test_a_contested_violation_upgraded_by_the_clock_updates_its_finding_incrementally(
    watchdog_and_clock: Any, store: Engine
) -> None:
    """No row changes: the clock makes C1 red by its new due date. The violation stays
    contested at its new grade, and the data_altered finding names that grade."""
    watchdog, now = watchdog_and_clock
    now[0] = RED_DAY
    later = watchdog.run_cycle("county")
    assert later.error is None and later.poll is not None and later.poll.revisions == 0
    overdue = violations(store)[("C1", "overdue")]
    assert (overdue.state, overdue.severity) == ("open", "red")
    assert overdue.contested_by_revision is not None
    assert applied(later.evaluation) == 1  # C1's violation changed, and only it
    altered = violations(store)[("C1", "data_altered")]
    assert altered.evidence["weakens"][0]["severity"] == "red"
    assert "红牌" in altered.evidence["summary"]

    after = recorded(store)
    full = watchdog.evaluate("county", RED_DAY, record=True, full=True)
    assert counted(full) == (0, 0, 0, 0)
    assert recorded(store) == after


def test_a_contested_violation_closed_later_resolves_its_finding_incrementally(
    watchdog_and_clock: Any, county: ForeignSource, store: Engine
) -> None:
    """Whatever closes a contested violation records it as `reconcile` does (state and a
    `resolved` event); the next incremental pass resolves the finding that named it. C1
    is completed on 3/18, before its new due date, so no rule finds it again."""
    watchdog, now = watchdog_and_clock
    county.upsert(
        "SP_BJXX",
        case(
            "C1", "2026-03-12 10:00:00", 5, BJSJ="2026-03-18 09:00:00", GXSJ="2026-03-18 09:00:00"
        ),
    )
    overdue = violations(store)[("C1", "overdue")]
    with store.begin() as connection:
        connection.execute(
            update(schema.violations)
            .where(schema.violations.c.id == overdue.id)
            .values(state="resolved", resolved_at=CYCLE_3)
        )
        connection.execute(
            insert(schema.violation_events).values(
                violation_id=overdue.id,
                event="resolved",
                severity_from=overdue.severity,
                at=CYCLE_3,
                recorded_at=CYCLE_3,
                reason="closed after review",
            )
        )
    now[0] = CYCLE_3
    third = watchdog.run_cycle("county")
    assert third.error is None
    assert counted(third.evaluation) == (0, 0, 1, 0)
    assert applied(third.evaluation) == 0
    altered = violations(store)[("C1", "data_altered")]
    assert (altered.state, altered.resolved_at) == ("resolved", CYCLE_3)
    table = schema.violation_events
    with store.connect() as connection:
        reason = connection.scalar(
            select(table.c.reason).where(
                table.c.violation_id == altered.id, table.c.event == "resolved"
            )
        )
    assert reason == "the contested violations are no longer open"

    after = recorded(store)
    full = watchdog.evaluate("county", CYCLE_3, record=True, full=True)
    assert counted(full) == (0, 0, 0, 0)
    assert applied(full) == 0
    assert recorded(store) == after
