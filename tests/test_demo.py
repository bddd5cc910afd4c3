"""The synthetic county's exchange database: shape, determinism, realism, injected faults."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import chinese_calendar
import pytest

from watchdog.cli import main
from watchdog.demo import (
    DEMO_FEE_CATALOGUE,
    DEPARTMENTS,
    MATTERS,
    DemoSummary,
    generate_demo_source,
)
from watchdog.demo import source as source_module

END = date(2026, 12, 31)
CASES = 2_000

EXPECTED_COLUMNS = {
    "INFO_CASE": [
        "PROJID", "ITEMNO", "ITEMNAME", "ACCEPTDEPTCODE", "ACCEPTDEPTNAME", "APPLICANTCODE",
        "APPLYDATE", "ACCEPTDATE", "PROMISETIMELIMIT", "PROMISETIMEUNIT", "TIMELIMIT", "BJSJ",
        "BJJG", "UPDATETIME",
    ],
    "INFO_PROCESS": [
        "PROCID", "PROJID", "NODENAME", "NODEPROCER", "NODEENDTIME", "NODERESULT", "UPDATETIME",
    ],
    "INFO_SPECIAL": [
        "TBCXID", "PROJID", "TBCXZL", "TBCXKSRQ", "TBCXJSRQ", "TBCXSX", "UPDATETIME",
    ],
    "INFO_FEE": ["SFID", "PROJID", "SFXMBM", "SFXMMC", "SFJE", "SFSJ", "UPDATETIME"],
    "INFO_INSPECT": [
        "JCID", "TYSHXYDM", "QYMC", "JCBMBM", "JCSJ", "JCLX", "LHJCBH", "UPDATETIME",
    ],
}  # fmt: skip
TIMESTAMPS = {
    "INFO_CASE": ["APPLYDATE", "ACCEPTDATE", "BJSJ"],
    "INFO_PROCESS": ["NODEENDTIME"],
    "INFO_SPECIAL": ["TBCXKSRQ", "TBCXJSRQ"],
    "INFO_FEE": ["SFSJ"],
    "INFO_INSPECT": ["JCSJ"],
}
KLASS = {m.code: m.klass for m in MATTERS}
CATALOGUE = {f.code: f for f in DEMO_FEE_CATALOGUE}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    path = tmp_path_factory.mktemp("demo") / "county.db"
    return path, generate_demo_source(path, cases=CASES, batch_size=500)


@pytest.fixture(scope="module")
def db(source: tuple[Path, DemoSummary]) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(source[0])
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


def rows(db: sqlite3.Connection, sql: str) -> list[sqlite3.Row]:
    return db.execute(sql).fetchall()


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with closing(sqlite3.connect(path)) as conn:
        for table in EXPECTED_COLUMNS:
            for row in sorted(conn.execute(f"SELECT * FROM {table}"), key=repr):
                h.update(repr(row).encode())
    return h.hexdigest()


def steps_by_case(db: sqlite3.Connection) -> dict[str, dict[str, list[tuple[str, str]]]]:
    out: dict[str, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows(db, "SELECT * FROM INFO_PROCESS ORDER BY NODEENDTIME"):
        out[r["PROJID"]][r["NODENAME"]].append((r["NODEENDTIME"], r["NODEPROCER"]))
    return out


def test_the_exchange_tables_have_exactly_the_standard_columns(db: sqlite3.Connection) -> None:
    tables = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == set(EXPECTED_COLUMNS)
    for table, columns in EXPECTED_COLUMNS.items():
        assert [r["name"] for r in rows(db, f"PRAGMA table_info({table})")] == columns
    indexed = {
        (r["tbl_name"], r["sql"].split("(")[-1].rstrip(")"))
        for r in rows(db, "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'index'")
        if r["sql"]
    }
    for table in EXPECTED_COLUMNS:
        assert (table, "UPDATETIME") in indexed
    for table in ("INFO_PROCESS", "INFO_SPECIAL", "INFO_FEE"):
        assert (table, "PROJID") in indexed


def test_the_same_seed_gives_the_same_rows_and_another_seed_different_ones(
    tmp_path: Path, source: tuple[Path, DemoSummary]
) -> None:
    again, other = tmp_path / "again.db", tmp_path / "other.db"
    assert generate_demo_source(again, cases=CASES, batch_size=777) == source[1]
    generate_demo_source(other, cases=CASES, seed=7)
    assert digest(again) == digest(source[0])
    assert digest(other) != digest(source[0])


def test_regenerating_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "county.db"
    path.write_text("not a database")
    summary = generate_demo_source(path, cases=50, start=date(2026, 3, 1), end=date(2026, 3, 31))
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM INFO_CASE").fetchone()[0] == summary.cases == 50
    assert not list(tmp_path.glob("*.partial"))


def test_a_failed_generation_leaves_the_previous_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "county.db"
    path.write_text("previous")

    def broken(*args: Any) -> dict[str, int]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(source_module, "_fill", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_demo_source(path, cases=10)
    assert path.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["county.db"]


@pytest.mark.parametrize(
    "arguments",
    [{"cases": -1}, {"batch_size": 0}, {"start": date(2026, 2, 1), "end": date(2026, 1, 31)}],
)
def test_impossible_arguments_are_refused(tmp_path: Path, arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate_demo_source(tmp_path / "county.db", **arguments)


def test_every_timestamp_is_well_formed_and_not_after_the_end_date(db: sqlite3.Connection) -> None:
    pattern = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
    for table, columns in TIMESTAMPS.items():
        for column in [*columns, "UPDATETIME"]:
            for (value,) in db.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"):
                assert pattern.match(value), (table, column, value)
                assert value <= f"{END} 23:59:59", (table, column, value)
    first = db.execute("SELECT min(APPLYDATE) FROM INFO_CASE").fetchone()[0]
    assert first >= "2025-01-01 00:00:00"


def test_updatetime_is_the_latest_of_the_rows_own_timestamps(db: sqlite3.Connection) -> None:
    for table, columns in TIMESTAMPS.items():
        for r in rows(db, f"SELECT * FROM {table}"):
            latest = max(r[c] for c in columns if r[c] is not None)
            assert r["UPDATETIME"] == latest, (table, dict(r))


def test_child_rows_reference_existing_cases(db: sqlite3.Connection) -> None:
    for table in ("INFO_PROCESS", "INFO_SPECIAL", "INFO_FEE"):
        orphans = db.execute(
            f"SELECT count(*) FROM {table} WHERE PROJID NOT IN (SELECT PROJID FROM INFO_CASE)"
        ).fetchone()[0]
        assert orphans == 0, table


def test_the_summary_counts_match_the_tables(
    db: sqlite3.Connection, source: tuple[Path, DemoSummary]
) -> None:
    def count(table: str) -> int:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    assert source[1] == DemoSummary(
        cases=count("INFO_CASE"),
        steps=count("INFO_PROCESS"),
        pauses=count("INFO_SPECIAL"),
        fees=count("INFO_FEE"),
        inspections=count("INFO_INSPECT"),
    )
    assert source[1].cases == CASES
    assert 3 * CASES < source[1].steps < 6 * CASES
    assert source[1].inspections > 100


def test_the_county_reference_data_is_consistent() -> None:
    depts = {d.code for d in DEPARTMENTS}
    assert len(depts) == len(DEPARTMENTS) >= 12
    assert len({m.code for m in MATTERS}) == len(MATTERS)
    for m in MATTERS:
        assert m.dept_code in depts
        assert m.unit in {"G", "Z", "1"} and m.klass in {"general", "immediate", "major"}
        assert (m.promised_limit == 0) == (m.klass == "immediate")
        assert m.statutory_limit is None or m.statutory_limit >= m.promised_limit
    per_dept: dict[str, int] = defaultdict(int)
    for m in MATTERS:
        per_dept[m.dept_code] += 1
    assert all(3 <= n <= 6 for n in per_dept.values())
    for item in DEMO_FEE_CATALOGUE:
        assert all(code in KLASS for code in item.matter_codes)
        assert item.min_amount is None or item.min_amount <= item.max_amount


def test_applications_come_on_working_days_in_office_hours(db: sqlite3.Connection) -> None:
    applied = [at(r[0]) for r in db.execute("SELECT APPLYDATE FROM INFO_CASE")]
    on_working_days = sum(chinese_calendar.is_workday(t.date()) for t in applied)
    assert on_working_days / len(applied) > 0.95
    steps = [at(r[0]).time() for r in db.execute("SELECT NODEENDTIME FROM INFO_PROCESS")]
    in_office = sum("08:30:00" <= f"{t:%H:%M:%S}" <= "18:00:00" for t in steps)
    assert in_office / len(steps) > 0.97


def working_days_between(first: date, last: date) -> int:
    """Working days d with first < d <= last."""
    return sum(
        chinese_calendar.is_workday(first + timedelta(days=i))
        for i in range(1, (last - first).days + 1)
    )


def finished_late(case: Any, pauses: list[Any]) -> bool:
    """Completed after the promised due date, counting as domain.md defines it."""
    accepted, completed = at(case["ACCEPTDATE"]).date(), at(case["BJSJ"]).date()
    limit = case["PROMISETIMELIMIT"] + sum(p["TBCXSX"] or 0 for p in pauses if p["TBCXZL"] == "A")
    covered: set[date] = set()
    for p in pauses:
        if p["TBCXZL"] != "A":
            first = at(p["TBCXKSRQ"]).date()
            last = at(p["TBCXJSRQ"]).date() if p["TBCXJSRQ"] else END
            covered |= {first + timedelta(days=i) for i in range((last - first).days + 1)}
    day, counted = accepted, 0
    while counted < limit and day < completed:
        day += timedelta(days=1)
        working = case["PROMISETIMEUNIT"] == "Z" or chinese_calendar.is_workday(day)
        counted += working and day not in covered
    return counted >= limit and day < completed


def test_a_few_percent_of_completed_cases_finish_after_their_due_date(
    db: sqlite3.Connection,
) -> None:
    pauses = defaultdict(list)
    for p in rows(db, "SELECT * FROM INFO_SPECIAL"):
        pauses[p["PROJID"]].append(p)
    completed = rows(db, "SELECT * FROM INFO_CASE WHERE BJSJ IS NOT NULL")
    late = [c for c in completed if finished_late(c, pauses[c["PROJID"]])]
    assert 0.01 <= len(late) / len(completed) <= 0.15
    open_cases = db.execute("SELECT count(*) FROM INFO_CASE WHERE BJSJ IS NULL").fetchone()[0]
    assert 0.01 <= open_cases / CASES <= 0.08


def test_every_kind_of_injected_procedure_fault_appears(db: sqlite3.Connection) -> None:
    cases = {r["PROJID"]: r for r in rows(db, "SELECT * FROM INFO_CASE")}
    found: dict[str, int] = defaultdict(int)
    for pid, steps in steps_by_case(db).items():
        first = {name: times[0] for name, times in steps.items()}
        if "批准" in first:
            major = KLASS[cases[pid]["ITEMNO"]] == "major"
            found["missing review"] += "承办" not in first
            found["missing verify"] += major and "审核" not in first
        if "批准" in first and "承办" in first:
            found["decided before review"] += first["批准"][0] < first["承办"][0]
            found["same handler"] += first["批准"][1] == first["承办"][1]
        accepted = cases[pid]["ACCEPTDATE"]
        found["step before acceptance"] += any(
            t < accepted for n, (t, _) in first.items() if n not in ("受理", "补正告知")
        )
        found["repeated supplement notice"] += len(steps.get("补正告知", [])) > 1
    late_acceptance = 0
    for c in cases.values():
        if c["ACCEPTDATE"]:
            waited = working_days_between(at(c["APPLYDATE"]).date(), at(c["ACCEPTDATE"]).date())
            late_acceptance += waited > 5
    found["late acceptance"] = late_acceptance
    for kind in (
        "missing review",
        "decided before review",
        "same handler",
        "step before acceptance",
        "repeated supplement notice",
        "late acceptance",
    ):
        assert 1 <= found[kind] <= 0.03 * CASES, (kind, dict(found))


def test_stuck_paused_extended_and_unaccepted_cases_exist(db: sqlite3.Connection) -> None:
    def count(sql: str) -> int:
        return int(db.execute(sql).fetchone()[0])

    assert count("SELECT count(*) FROM INFO_CASE WHERE ACCEPTDATE IS NULL") >= 1
    stuck = "SELECT count(*) FROM INFO_CASE WHERE BJSJ IS NULL AND ACCEPTDATE < '2026-09-01'"
    assert 0.005 * CASES <= count(stuck) <= 0.04 * CASES
    assert count("SELECT count(*) FROM INFO_SPECIAL WHERE TBCXJSRQ IS NULL") >= 1
    assert count("SELECT count(*) FROM INFO_SPECIAL WHERE TBCXZL = 'A' AND TBCXSX = 10") >= 1
    kinds = {r[0] for r in db.execute("SELECT DISTINCT TBCXZL FROM INFO_SPECIAL")}
    assert {"A", "C", "F"} <= kinds
    units = {r[0] for r in db.execute("SELECT DISTINCT PROMISETIMEUNIT FROM INFO_CASE")}
    assert units == {"G", "Z", "1"}
    results = {r[0] for r in db.execute("SELECT DISTINCT BJJG FROM INFO_CASE")}
    assert results == {"1", "2", "3", None}


def test_every_kind_of_injected_fee_fault_appears(db: sqlite3.Connection) -> None:
    found: dict[str, int] = defaultdict(int)
    fees = rows(db, "SELECT f.*, c.BJJG, c.ITEMNO FROM INFO_FEE f JOIN INFO_CASE c USING (PROJID)")
    for f in fees:
        item = CATALOGUE.get(f["SFXMBM"])
        charged = at(f["SFSJ"]).date()
        if item is None:
            found["not in catalogue"] += 1
            continue
        amount = Decimal(f["SFJE"])
        found["over standard"] += amount > item.max_amount
        found["not in force"] += item.valid_to is not None and charged > item.valid_to
        found["refused case"] += f["BJJG"] == "2"
        found["not applicable"] += bool(item.matter_codes) and f["ITEMNO"] not in item.matter_codes
        found["above minimum"] += (
            item.charge_at_minimum and item.min_amount is not None and amount > item.min_amount
        )
        found["lawful"] += f["BJJG"] == "1" and amount <= item.max_amount
    kinds = ("not in catalogue", "over standard", "refused case", "not applicable", "above minimum")
    for kind in kinds:
        assert 1 <= found[kind] <= 0.1 * len(fees), (kind, dict(found))
    assert found["lawful"] > 0.8 * len(fees)
    assert all(re.match(r"^\d+\.\d\d$", f["SFJE"]) for f in fees)


def test_inspections_have_joint_groups_exempt_kinds_and_a_few_repeats(
    db: sqlite3.Connection,
) -> None:
    inspections = rows(db, "SELECT * FROM INFO_INSPECT ORDER BY JCSJ, JCID")
    kinds = {r["JCLX"] for r in inspections}
    assert kinds == {"双随机", "日常检查", "投诉举报", "复查", "联合检查"}
    groups: dict[str, set[str]] = defaultdict(set)
    for r in inspections:
        if r["LHJCBH"]:
            groups[r["LHJCBH"]].add(r["JCBMBM"])
    assert groups and all(2 <= len(depts) <= 3 for depts in groups.values())
    units: dict[str, list[date]] = defaultdict(list)
    seen_groups: set[str] = set()
    for r in inspections:
        if r["JCLX"] in ("投诉举报", "复查") or r["LHJCBH"] in seen_groups:
            continue
        if r["LHJCBH"]:
            seen_groups.add(r["LHJCBH"])
        units[r["TYSHXYDM"]].append(at(r["JCSJ"]).date())
    repeats = sum(
        (later - earlier).days <= 30
        for dates in units.values()
        for earlier, later in pairwise(dates)
    )
    assert 1 <= repeats <= 0.1 * len(inspections)
    firms = {r["TYSHXYDM"] for r in inspections}
    assert all(len(code) == 18 for code in firms)


def test_the_demo_county_shows_every_finding_code_of_every_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`watchdog evaluate --format jsonl` on the demo county (deterministic seed) lists
    findings of every code of every rule kind, pattern rules included."""
    root = Path(__file__).resolve().parent.parent
    generate_demo_source(tmp_path / "var" / "demo-source.db", cases=6_000)
    shutil.copytree(root / "rules", tmp_path / "rules")
    shutil.copy(root / "calendar.toml", tmp_path / "calendar.toml")
    shutil.copy(root / "config.toml", tmp_path / "config.toml")
    config = str(tmp_path / "config.toml")
    assert main(["db", "upgrade", "--config", config]) == 0
    capsys.readouterr()
    as_of = "2026-11-30T18:00:00+08:00"
    assert main(["evaluate", "--config", config, "--as-of", as_of, "--format", "jsonl"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(r["kind"], r["finding"]) for r in records} == {
        ("overdue", "overdue"),
        ("procedure", "step_missing"),
        ("procedure", "out_of_order"),
        ("procedure", "before_acceptance"),
        ("procedure", "same_handler"),
        ("fee", "not_in_catalogue"),
        ("fee", "not_in_force"),
        ("fee", "over_standard"),
        ("fee", "not_applicable"),
        ("fee", "above_minimum"),
        ("inspection", "repeat"),
        ("pattern", "repeated_supplement_notice"),
        ("pattern", "fee_on_refusal"),
    }
    by_finding = {r["finding"]: r for r in records}
    assert by_finding["above_minimum"]["severity"] == "warning"
    assert by_finding["not_applicable"]["severity"] == "yellow"
    assert by_finding["fee_on_refusal"]["severity"] == "red"
    assert by_finding["repeated_supplement_notice"]["severity"] == "yellow"
