"""`watchdog evaluate --full`: a recording re-evaluation of every case at the current time."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import Engine, select

from tests.conftest import pg_schema_engine
from watchdog.app import Watchdog
from watchdog.cli import main
from watchdog.config import load_settings
from watchdog.demo import generate_demo_source
from watchdog.store import schema
from watchdog.store.database import create_store_engine, upgrade_store

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
INSTANTS = [datetime(2026, month, 28, 18, tzinfo=SHANGHAI) for month in (3, 6, 9)]
LAST = INSTANTS[-1]
SUMMARY = re.compile(
    r'source "demo": full evaluation at (?P<at>.+) of (?P<cases>\d+) cases: violations '
    r"opened (?P<opened>\d+), upgraded (?P<upgraded>\d+), resolved (?P<resolved>\d+), "
    r"reopened (?P<reopened>\d+)"
)


def make_county(folder: Path, store_url: str) -> Path:
    """The demo county's config, source and rules in `folder`; the config's path."""
    folder.mkdir(exist_ok=True)
    generate_demo_source(folder / "var" / "demo-source.db", cases=2000, seed=5)
    shutil.copytree(ROOT / "rules", folder / "rules")
    shutil.copy(ROOT / "calendar.toml", folder / "calendar.toml")
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/watchdog.db"', f'url = "{store_url}"')
    (folder / "config.toml").write_text(text, encoding="utf-8")
    return folder / "config.toml"


def open_violations(store: Engine) -> dict[str, str]:
    table = schema.violations
    query = select(table.c.fingerprint, table.c.severity).where(table.c.state == "open")
    with store.connect() as connection:
        return {row.fingerprint: row.severity for row in connection.execute(query)}


def evaluate_full(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    """Run `watchdog evaluate --full` at LAST; the counts it printed."""
    capsys.readouterr()
    with time_machine.travel(LAST, tick=False):
        status = main(["evaluate", "--full", "--config", str(config)])
    out = capsys.readouterr().out
    assert status == 0, out
    match = SUMMARY.fullmatch(out.strip())
    assert match is not None, out
    assert datetime.fromisoformat(match["at"]) == LAST
    return {key: int(value) for key, value in match.groupdict().items() if key != "at"}


def second_store_url(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Another empty store on the same backend."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'second.db'}"
    schema_name = re.findall(r"search_path%3D(\w+)", store_url)[0]
    pg_schema_engine(request.getfixturevalue("pg_database"), f"{schema_name}_b").dispose()
    return store_url.replace(f"%3D{schema_name}", f"%3D{schema_name}_b")


def test_evaluate_full_records_what_the_incremental_cycles_recorded(
    store: Engine,
    store_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = make_county(tmp_path / "incremental", store_url)
    now = [INSTANTS[0]]
    watchdog = Watchdog(load_settings(config), store, clock=lambda: now[0])
    for instant in INSTANTS:
        now[0] = instant
        report = watchdog.run_cycle("demo")
        assert report.error is None and report.evaluation is not None
        assert not report.evaluation.errors
    watchdog.close()
    incremental = open_violations(store)
    assert len(incremental) > 100

    # A full re-evaluation at the last cycle's instant finds exactly what is on record.
    counts = evaluate_full(config, capsys)
    assert counts == {"cases": 2000, "opened": 0, "upgraded": 0, "resolved": 0, "reopened": 0}
    assert open_violations(store) == incremental

    # On an empty store it records the same violations, with the same grades.
    other_url = second_store_url(store_url, tmp_path, request)
    other = create_store_engine(other_url)
    upgrade_store(other)
    counts = evaluate_full(make_county(tmp_path / "full", other_url), capsys)
    assert counts["opened"] == len(incremental)
    assert open_violations(other) == incremental
    other.dispose()


def test_evaluate_full_records_what_a_changed_rule_finds_and_then_nothing(
    store: Engine, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_county(tmp_path, store_url)
    counts = evaluate_full(config, capsys)
    assert counts["opened"] > 0
    before = open_violations(store)

    catalogue = tmp_path / "rules" / "data" / "fee_catalogue.toml"
    text = catalogue.read_text(encoding="utf-8")
    catalogue.write_text(text.replace('max = "80.00"', 'max = "60.00"', 1), encoding="utf-8")
    counts = evaluate_full(config, capsys)
    after = open_violations(store)
    assert counts["opened"] == len(after.keys() - before.keys()) > 0
    # Every case was judged again, completed ones included: what a dry run finds.
    watchdog = Watchdog(load_settings(config), store)
    dry_run = watchdog.evaluate("demo", LAST, record=False).findings
    watchdog.close()
    assert after == {finding.fingerprint: finding.severity.value for finding in dry_run}
    assert (counts["upgraded"], counts["resolved"], counts["reopened"]) == (0, 0, 0)
    assert evaluate_full(config, capsys) == {**counts, "opened": 0}
    table = schema.source_state
    with store.connect() as connection:
        evaluated_at = connection.scalar(
            select(table.c.evaluated_at).where(table.c.source == "demo")
        )
    assert evaluated_at == LAST


def test_evaluate_needs_as_of_and_full_takes_none(capsys: pytest.CaptureFixture[str]) -> None:
    as_of = "2026-06-30T18:00:00+08:00"
    assert main(["evaluate", "--full", "--as-of", as_of]) == 2
    assert capsys.readouterr().err == (
        "error: evaluate --full records at the current time; it takes no --as-of\n"
    )
    assert main(["evaluate"]) == 2
    assert capsys.readouterr().err == (
        "error: evaluate: --as-of is required (or --full to re-evaluate and record now)\n"
    )
