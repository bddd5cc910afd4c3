"""A calendar override file edited while the daemon runs is taken up at the next cycle."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from tests.test_faults import case, due_dates, garbage_source, garbage_watchdog
from watchdog.app import Watchdog
from watchdog.config import load_settings

MOMENT = datetime(2027, 1, 15, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
YEAR_2027 = '[years.2027]\nholidays = ["2027-01-01"]\nmakeup_workdays = []\n'


def watchdog_with_override_file(tmp_path: Path, store: Engine, store_url: str) -> Watchdog:
    garbage_watchdog(tmp_path, store, store_url)  # writes config.toml
    (tmp_path / "calendar.toml").write_text("# no year yet beyond the official data\n", "utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        config.read_text("utf-8").replace(
            "[[sources]]", '[calendar]\noverrides = "calendar.toml"\n\n[[sources]]'
        ),
        "utf-8",
    )
    return Watchdog(load_settings(config), store, clock=lambda: MOMENT)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_year_added_to_the_override_file_while_running_makes_the_deadlines_final(
    store: Engine, store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage_source(tmp_path / "north.db", [case("INTO2027", accepted="2026-12-28 10:00:00")], [])
    watchdog = watchdog_with_override_file(tmp_path, store, store_url)
    assert watchdog.run_cycle("north").error is None
    assert due_dates(store) == {"INTO2027": ("2027-01-04", True)}

    # A broken edit is reported once and changes nothing; the next cycle stays incremental.
    (tmp_path / "calendar.toml").write_text("[years.2027\n", "utf-8")
    with caplog.at_level("ERROR", logger="watchdog.calendar_watch"):
        for _ in range(2):
            assert watchdog.run_cycle("north").error is None
    assert [r.getMessage() for r in caplog.records if r.name == "watchdog.calendar_watch"] == [
        "calendar override file not reloaded, the calendar in use stays: calendar.toml: "
        "line 1, column 12: invalid TOML: Expected ']' at the end of a table declaration"
    ]
    assert due_dates(store) == {"INTO2027": ("2027-01-04", True)}

    (tmp_path / "calendar.toml").write_text(YEAR_2027, "utf-8")
    report = watchdog.run_cycle("north")
    assert report.error is None
    assert report.evaluation is not None and report.evaluation.cases_evaluated == 1
    assert due_dates(store) == {"INTO2027": ("2027-01-05", False)}
    assert watchdog.calendar.coverage_end.isoformat() == "2027-12-31"
    # The calendar is recorded: the cycle after is incremental again and finds nothing new.
    report = watchdog.run_cycle("north")
    assert report.evaluation is not None and report.evaluation.cases_evaluated == 0
    watchdog.close()
