"""`watchdog rules test`: a rule file backtested over the stored demo county.

What a backtest says it would add, no longer find and grade differently is checked
against what a recording cycle really does once the same file is installed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import Engine, func, select

from watchdog.app import Watchdog
from watchdog.cli import main
from watchdog.config import load_settings
from watchdog.demo import generate_demo_source
from watchdog.engine.backtest import end_of_day
from watchdog.engine.rulefiles import load_rule_file
from watchdog.store import schema

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 6, 28)
INSTANT = end_of_day(DAY, SHANGHAI)  # the cycles' instant: what `--to DAY` evaluates at


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo-source.db"
    generate_demo_source(path, cases=2500, seed=11)
    return path


Key = tuple[str, str, str, str]  # rule, finding, case ("-" for none), subject ("" for none)


@dataclass
class County:
    folder: Path
    config: Path
    store: Engine
    watchdog: Watchdog

    @property
    def rules(self) -> Path:
        return self.folder / "rules"

    def cycle(self) -> None:
        report = self.watchdog.run_cycle("demo")
        assert report.error is None, report.error
        assert report.evaluation is not None and not report.evaluation.errors

    def open_violations(self) -> dict[Key, str]:
        """Open violations on record: (rule, finding, case, subject) → severity."""
        table = schema.violations
        query = select(
            table.c.rule_id, table.c.finding, table.c.case_id, table.c.subject, table.c.severity
        )
        with self.store.connect() as connection:
            rows = connection.execute(query.where(table.c.state == "open"))
            return {
                (row.rule_id, row.finding, row.case_id or "-", row.subject or ""): row.severity
                for row in rows
            }

    def backtest(self, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        capsys.readouterr()
        status = main(["rules", "test", *args, "--config", str(self.config), "--limit", "100000"])
        return status, capsys.readouterr().out


@pytest.fixture
def county(store: Engine, store_url: str, tmp_path: Path, demo_source: Path) -> Iterator[County]:
    """The demo county with the shipped rules, after one recorded cycle at INSTANT."""
    (tmp_path / "var").mkdir()
    shutil.copy(demo_source, tmp_path / "var" / "demo-source.db")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copy(ROOT / "calendar.toml", tmp_path / "calendar.toml")
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/watchdog.db"', f'url = "{store_url}"')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    settings = load_settings(tmp_path / "config.toml")
    watchdog = Watchdog(settings, store, clock=lambda: INSTANT)
    county = County(tmp_path, tmp_path / "config.toml", store, watchdog)
    county.cycle()
    yield county
    watchdog.close()


@dataclass(frozen=True)
class Report:
    """The sections of a printed backtest: their counts, and their rows as a key and a
    severity ("on record→would be" for severity changes)."""

    counts: dict[str, int]
    rows: dict[str, dict[Key, str]]
    summary: str


RANK = {"warning": 1, "yellow": 2, "red": 3}
SECTIONS = ("would add", "would no longer find", "severity changes")


def parse(out: str) -> Report:
    counts: dict[str, int] = {}
    rows: dict[str, dict[Key, str]] = {name: {} for name in SECTIONS}
    section = ""
    for line in out.splitlines():
        if match := re.fullmatch(r"(would add|would no longer find|severity changes): (\d+)", line):
            section = match[1]
            counts[section] = int(match[2])
        elif section and line.startswith("demo "):
            cells = line.split()  # source rule finding case dept [subject] severity...
            if section == "severity changes":
                severity, cells = f"{cells[-2]}→{cells[-1]}", cells[:-2]
            else:
                severity, cells = cells[-1], cells[:-1]
            subject = cells[5] if len(cells) > 5 else ""
            rows[section][(cells[1], cells[2], cells[3], subject)] = severity
    summary = next(line for line in out.splitlines() if line.startswith("summary: "))
    return Report(counts, rows, summary)


def store_snapshot(store: Engine) -> tuple[dict[str, int], str]:
    """Row counts of every table and a digest of the violations and their events."""
    digest = hashlib.sha256()
    with store.connect() as connection:
        counts = {
            table.name: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in schema.metadata.sorted_tables
        }
        for table in (schema.violations, schema.violation_events, schema.source_state):
            for row in connection.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    return counts, digest.hexdigest()


def test_the_shipped_rules_backtested_after_a_cycle_change_nothing_and_write_nothing(
    county: County, capsys: pytest.CaptureFixture[str]
) -> None:
    before = store_snapshot(county.store)
    on_record = county.open_violations()
    files = sorted(county.rules.glob("*.toml"))
    assert {path.stem for path in files} >= {"overdue", "procedure", "fees", "inspections"}
    for path in files:
        status, out = county.backtest(str(path), "--to", str(DAY), capsys=capsys)
        assert status == 0, out
        report = parse(out)
        assert report.counts == dict.fromkeys(SECTIONS, 0), out
        unchanged = int(re.findall(r"(\d+) unchanged", report.summary)[0])
        ids = {rule.id for rule in load_rule_file(path, county.rules).rules}
        expected = sum(1 for key in on_record if key[0] in ids)
        assert unchanged == expected, path.name
        # The demo alters no source data: only data_altered has nothing on record.
        assert expected > 0 or path.stem == "data_altered", path.name
    # Without --to the backtest runs at the current time, here the cycle's instant.
    with time_machine.travel(INSTANT, tick=False):
        status, out = county.backtest(str(county.rules / "overdue.toml"), capsys=capsys)
    assert status == 0 and parse(out).counts == dict.fromkeys(SECTIONS, 0), out
    assert store_snapshot(county.store) == before


def _lower_residential_fee(county: County, proposed: Path) -> Path:
    """The fee rule beside a catalogue whose residential registration fee is 60, not 80."""
    (proposed / "data").mkdir(parents=True)
    shutil.copy(county.rules / "fees.toml", proposed / "fees.toml")
    catalogue = (county.rules / "data" / "fee_catalogue.toml").read_text(encoding="utf-8")
    assert 'max = "80.00"' in catalogue
    changed = catalogue.replace('max = "80.00"', 'max = "60.00"', 1)
    (proposed / "data" / "fee_catalogue.toml").write_text(changed, encoding="utf-8")
    return proposed / "fees.toml"


def _edit(name: str, old: str, new: str) -> Callable[[County, Path], Path]:
    """A proposed copy of a shipped rule file with one line changed (data from rules/)."""

    def make(county: County, proposed: Path) -> Path:
        text = (county.rules / name).read_text(encoding="utf-8")
        assert old in text
        proposed.mkdir()
        (proposed / name).write_text(text.replace(old, new), encoding="utf-8")
        return proposed / name

    return make


CHANGES = {
    "lowered fee standard": _lower_residential_fee,
    "60-day inspection window": _edit("inspections.toml", "window_days = 30", "window_days = 60"),
    "two inspections allowed": _edit("inspections.toml", "max_in_window = 1", "max_in_window = 2"),
    "repeat graded red": _edit(
        "inspections.toml", "[rules.params]", '[rules.severity]\nrepeat = "red"\n\n[rules.params]'
    ),
    "not_in_catalogue graded yellow": _edit(
        "fees.toml", 'not_applicable = "yellow"', 'not_in_catalogue = "yellow"'
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_changed_rule_reports_exactly_what_a_cycle_then_records(
    county: County, change: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    proposed = tmp_path / "proposed"
    rule_file = CHANGES[change](county, proposed)
    before = county.open_violations()
    snapshot = store_snapshot(county.store)
    with time_machine.travel(INSTANT, tick=False):
        status, out = county.backtest(str(rule_file), capsys=capsys)
    assert status == 0, out
    assert store_snapshot(county.store) == snapshot
    report = parse(out)

    # Install the proposed files; the next cycle reloads them and evaluates every case.
    for path in proposed.rglob("*.toml"):
        shutil.copy(path, county.rules / path.relative_to(proposed))
    county.cycle()
    after = county.open_violations()
    assert report.rows["would add"] == {k: after[k] for k in after.keys() - before.keys()}
    assert report.rows["would no longer find"] == {
        k: before[k] for k in before.keys() - after.keys()
    }
    changes = report.rows["severity changes"]
    upgrades = {k: v for k, v in changes.items() if RANK[v.split("→")[1]] > RANK[before[k]]}
    assert upgrades == {
        k: f"{before[k]}→{after[k]}" for k in after.keys() & before.keys() if before[k] != after[k]
    }
    # A milder grade is reported, but a violation keeps the grade it reached.
    milder = changes.keys() - upgrades.keys()
    assert all(after[k] == before[k] for k in milder)
    assert (f"({len(milder)} milder: " in out) == bool(milder)
    assert {section: len(rows) for section, rows in report.rows.items()} == report.counts
    assert sum(report.counts.values()) > 0, f"{change}: the change must change something"


def test_a_new_rule_id_reports_every_finding_as_an_addition(
    county: County, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    proposed = _edit("procedure.toml", 'id = "procedure"', 'id = "procedure-2027"')(
        county, tmp_path / "proposed"
    )
    status, out = county.backtest(str(proposed), "--to", str(DAY), capsys=capsys)
    assert status == 0, out
    report = parse(out)
    current = {
        ("procedure-2027", *key[1:]): severity
        for key, severity in county.open_violations().items()
        if key[0] == "procedure"
    }
    assert report.rows == {"would add": current, "would no longer find": {}, "severity changes": {}}
    assert len(current) > 0


def _accepted(store: Engine, case_ids: set[str]) -> dict[str, datetime]:
    table = schema.cases
    with store.connect() as connection:
        rows = connection.execute(
            select(table.c.case_id, table.c.accepted_at).where(table.c.case_id.in_(case_ids))
        )
        return {row.case_id: row.accepted_at for row in rows}


def test_from_and_to_restrict_the_backtest_to_cases_accepted_in_the_window(
    county: County, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    proposed = _edit("fees.toml", 'id = "fees"', 'id = "fees-new"')(county, tmp_path / "proposed")
    start = datetime(2026, 3, 1, tzinfo=SHANGHAI)
    until = end_of_day(date(2026, 5, 31), SHANGHAI)
    status, out = county.backtest(str(proposed), "--to", "2026-05-31", capsys=capsys)
    assert status == 0, out
    to_only = {(case, subject) for _, _, case, subject in parse(out).rows["would add"]}
    status, out = county.backtest(
        str(proposed), "--from", "2026-03-01", "--to", "2026-05-31", capsys=capsys
    )
    assert status == 0, out
    window = {(case, subject) for _, _, case, subject in parse(out).rows["would add"]}
    accepted = _accepted(county.store, {case for case, _ in to_only})
    assert all(accepted[case] <= until for case, _ in to_only)
    assert window == {(case, fee) for case, fee in to_only if accepted[case] >= start}
    assert 0 < len(window) < len(to_only)
    assert "from 2026-03-01 to 2026-05-31" in out


def test_from_and_to_restrict_repeat_inspections_to_those_made_in_the_window(
    county: County, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    proposed = _edit("inspections.toml", 'id = "repeat-inspection"', 'id = "repeat-new"')(
        county, tmp_path / "proposed"
    )
    status, out = county.backtest(str(proposed), "--to", str(DAY), capsys=capsys)
    everything = {subject for *_, subject in parse(out).rows["would add"]}
    status, out = county.backtest(
        str(proposed), "--from", "2026-04-01", "--to", str(DAY), capsys=capsys
    )
    assert status == 0, out
    window = {subject for *_, subject in parse(out).rows["would add"]}
    table = schema.inspections
    with county.store.connect() as connection:
        rows = connection.execute(select(table.c.inspection_id, table.c.inspected_at))
        dates = {row.inspection_id: row.inspected_at for row in rows}
    start = datetime(2026, 4, 1, tzinfo=SHANGHAI)
    assert window == {subject for subject in everything if dates[subject] >= start}
    assert 0 < len(window) < len(everything)


def test_a_broken_rule_file_prints_its_problem_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = ROOT / "tests" / "fixtures" / "rules_broken" / "d_bad_type.toml"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/store.db"\n[rules]\ndir = "{ROOT / "rules"}"\n'
        '[[sources]]\nname = "county"\nurl = "sqlite:///source.db"\n'
        '[sources.queries]\ncases = "SELECT 1"\n',
        encoding="utf-8",
    )
    status = main(["rules", "test", str(broken), "--config", str(config)])
    out = capsys.readouterr().out
    assert status == 1
    assert out.splitlines() == [
        f"{broken.parent}/d_bad_type.toml: rules[0].params.warning_days: "
        "expected an integer, got 'two'"
    ]
    missing = tmp_path / "fees.toml"
    missing.write_text(
        (ROOT / "rules" / "fees.toml")
        .read_text(encoding="utf-8")
        .replace("data/fee_catalogue.toml", "data/catalogue-2027.toml"),
        encoding="utf-8",
    )
    status = main(["rules", "test", str(missing), "--config", str(config)])
    assert status == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path}/fees.toml: rules[0].params: file not found: data/catalogue-2027.toml"
    ]
    assert not (tmp_path / "store.db").exists()  # nothing was opened, let alone written


def test_rules_test_refuses_bad_dates(capsys: pytest.CaptureFixture[str]) -> None:
    rule = str(ROOT / "rules" / "fees.toml")
    assert main(["rules", "test", rule, "--from", "2026-06-30", "--to", "2026-06-01"]) == 2
    assert (
        capsys.readouterr().err == "error: rules test: --from 2026-06-30 is after --to 2026-06-01\n"
    )
    assert main(["rules", "test", rule, "--to", "30/06/2026"]) == 2
    assert (
        capsys.readouterr().err
        == 'error: --to: expected a date like "2026-06-30", got "30/06/2026"\n'
    )
    assert main(["rules", "test"]) == 2
    assert capsys.readouterr().err == "error: rules test: the rule file to test is required\n"
