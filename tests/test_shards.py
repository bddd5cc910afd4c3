"""A full evaluation split across worker processes records what one process would."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from watchdog.app import Watchdog
from watchdog.audit.verify import verify_store
from watchdog.config import load_settings
from watchdog.demo import generate_demo_source
from watchdog.engine import shards
from watchdog.engine.evaluate import read_baseline
from watchdog.store import schema

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 6, 30, 18, tzinfo=SHANGHAI)
CASES = 1_500


def county(folder: Path, store_url: str, workers: int) -> Path:
    """The demo county's config, source and rules in `folder`, with `workers`."""
    folder.mkdir(parents=True, exist_ok=True)
    generate_demo_source(folder / "var" / "demo-source.db", cases=CASES, seed=7)
    shutil.copytree(ROOT / "rules", folder / "rules")
    shutil.copy(ROOT / "calendar.toml", folder / "calendar.toml")
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/watchdog.db"', f'url = "{store_url}"')
    text = text.replace(
        'log_level = "INFO"', f'log_level = "INFO"\nevaluation_workers = {workers}', 1
    )
    config = folder / "config.toml"
    config.write_text(text, encoding="utf-8")
    return config


def event_checks(store: Engine) -> dict[str, datetime]:
    table = schema.case_checks
    with store.connect() as connection:
        rows = connection.execute(
            select(table.c.case_id, table.c.check_at).where(table.c["pass"] == "event")
        ).all()
    return {row.case_id: row.check_at for row in rows}


def recorded(store: Engine) -> set[tuple[str, str, str]]:
    table = schema.violations
    with store.connect() as connection:
        rows = connection.execute(
            select(table.c.fingerprint, table.c.severity, table.c.state)
        ).all()
    return {(row.fingerprint, row.severity, row.state) for row in rows}


def test_ranges_split_the_cases_as_asked(store: Engine, tmp_path: Path) -> None:
    config = county(tmp_path / "county", "sqlite:///unused.db", workers=3)
    watchdog = Watchdog(load_settings(config), store, clock=lambda: AT)
    try:
        watchdog.poll("demo")
    finally:
        watchdog.close()
    cases = schema.cases

    def counts(ranges: list[shards.CaseRange]) -> list[int]:
        assert ranges[0][0] is None and ranges[-1][1] is None
        found = []
        with store.connect() as connection:
            for low, high in ranges:
                query = select(func.count()).select_from(cases).where(cases.c.source == "demo")
                if low is not None:
                    query = query.where(cases.c.case_id >= low)
                if high is not None:
                    query = query.where(cases.c.case_id < high)
                found.append(int(connection.scalar(query) or 0))
        return found

    even = counts(shards.case_ranges(store, "demo", 3))
    assert len(even) == 3 and sum(even) == CASES
    assert max(even) - min(even) <= 1
    # The caller's own range is smaller by the share of the passes it runs after it.
    first, second = counts(shards.case_ranges(store, "demo", 2, first_smaller_by=0.1))
    assert (first, second) == (675, 825)


def test_a_split_full_evaluation_records_what_one_process_finds(
    store: Engine, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shards, "PARALLEL_MIN_CASES", 100)  # the demo county is small
    config = county(tmp_path / "county", store_url, workers=3)
    watchdog = Watchdog(load_settings(config), store, clock=lambda: AT)
    try:
        watchdog.poll("demo")
        run = watchdog.evaluate("demo", AT, record=True, full=True)
        assert run.errors == []
        assert run.cases_evaluated == CASES
        assert run.counts.opened > 100
        split_checks = event_checks(store)
        # A dry run evaluates every case in this process.
        dry = watchdog.evaluate("demo", AT, record=False)
        # The event checks, scheduled beside the workers, are those of a full pass in
        # one process: the rows dated after the instant (the demo runs to the year's end).
        monkeypatch.setattr(shards, "PARALLEL_MIN_CASES", CASES + 1)
        again = watchdog.evaluate("demo", AT, record=True, full=True)
        assert again.errors == [] and again.counts.opened == 0
    finally:
        watchdog.close()
    assert len(split_checks) > 100
    assert event_checks(store) == split_checks
    found = {(f.fingerprint, f.severity.value, "open") for f in dry.findings}
    assert recorded(store) == found
    assert len(found) == run.counts.opened
    # Three processes appended to one audit chain: it is whole and unforked.
    verification = verify_store(store)
    assert verification.ok, verification.summary()
    assert verification.entries > run.counts.opened
    assert read_baseline(store, "demo").evaluated_at == AT


def test_a_range_that_fails_leaves_the_source_to_evaluate_again(
    store: Engine, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shards, "PARALLEL_MIN_CASES", 100)
    config = county(tmp_path / "county", store_url, workers=2)
    watchdog = Watchdog(load_settings(config), store, clock=lambda: AT)
    try:
        watchdog.poll("demo")
        # The workers load the rules again and find them changed: their range fails.
        rule_file = next((tmp_path / "county" / "rules").glob("*.toml"))
        rule_file.write_text(rule_file.read_text(encoding="utf-8") + "\n# edited\n", "utf-8")
        run = watchdog.evaluate("demo", AT, record=True, full=True)
    finally:
        watchdog.close()
    assert len(run.errors) == 1
    assert "changed during the evaluation" in run.errors[0]
    assert run.errors[0].startswith("cases [")
    assert 0 < run.cases_evaluated < CASES  # the range evaluated here was recorded
    assert read_baseline(store, "demo").evaluated_at is None  # not marked evaluated
