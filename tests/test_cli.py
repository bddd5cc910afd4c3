"""The watchdog command: evaluate, run (once and as a daemon), db, and its error lines."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_poller import CASES, make_source, row

RULES = Path(__file__).resolve().parent.parent / "rules"
CONFIG = f"""
[store]
url = "sqlite:///store.db"

[rules]
dir = "{RULES}"

[[sources]]
name = "county"
url = "sqlite:///source.db"
poll_interval = "1s"

[sources.queries]
cases = \"\"\"{{cases}}\"\"\"
"""


def watchdog(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def county(tmp_path: Path) -> Path:
    """A folder with config.toml, a small source and a migrated store."""
    make_source(
        tmp_path,
        [
            row("C1", "2026-03-02 10:00:00", limit=5),  # due 3/9
            row("C2", "2026-03-02 10:00:00", limit=2),  # due 3/4
            row("C3", "2026-03-02 10:00:00", limit=20),  # due 3/30
        ],
    )
    (tmp_path / "config.toml").write_text(CONFIG.format(cases=CASES), encoding="utf-8")
    assert watchdog("db", "upgrade", cwd=tmp_path).returncode == 0
    return tmp_path


def test_evaluate_prints_the_jsonl_contract_and_is_repeatable(county: Path) -> None:
    first = watchdog(
        "evaluate", "--as-of", "2026-03-06T18:00:00+08:00", "--format", "jsonl", cwd=county
    )
    again = watchdog(
        "evaluate", "--as-of", "2026-03-06T18:00:00+08:00", "--format", "jsonl", cwd=county
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(r["case_id"], r["severity"]) for r in records] == [("C1", "warning"), ("C2", "yellow")]
    c1 = records[0]
    assert {k: c1[k] for k in ("kind", "finding", "rule", "source", "subject", "dept_code")} == {
        "kind": "overdue",
        "finding": "overdue",
        "rule": "overdue",
        "source": "county",
        "subject": None,
        "dept_code": "SCJGJ",
    }
    assert c1["due_date"] == "2026-03-09"
    assert c1["provisional"] is False
    assert c1["evidence"]["remaining_days"] == 1


def test_evaluate_as_of_an_earlier_instant_does_not_see_later_events(county: Path) -> None:
    result = watchdog("evaluate", "--as-of", "2026-03-01T12:00:00", "--format", "jsonl", cwd=county)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # nothing was accepted yet on 3/1


def test_run_once_records_violations_that_violations_lists(county: Path) -> None:
    result = watchdog("run", "--once", cwd=county)
    assert result.returncode == 0, result.stderr
    assert 'source "county": read 3 rows (3 changed, 0 quarantined)' in result.stderr
    listed = watchdog("violations", "--format", "jsonl", cwd=county)
    cases = sorted(json.loads(line)["case_id"] for line in listed.stdout.splitlines())
    assert cases == ["C1", "C2", "C3"]  # graded today, all three are long past due


def test_a_store_behind_the_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    make_source(tmp_path, [])
    (tmp_path / "config.toml").write_text(CONFIG.format(cases=CASES), encoding="utf-8")
    result = watchdog("run", "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: store sqlite:///{tmp_path.resolve() / 'store.db'} has no watchdog schema yet: "
        "run `watchdog db upgrade` to create it"
    )


def test_a_bad_config_is_one_line_per_problem(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        CONFIG.format(cases=CASES).replace('"1s"', '"soon"'), encoding="utf-8"
    )
    result = watchdog("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'config error: config.toml: sources[0].poll_interval: expected a duration like "60s", '
        'got "soon"'
    )


def test_a_bad_as_of_is_named(county: Path) -> None:
    result = watchdog("evaluate", "--as-of", "last tuesday", cwd=county)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'error: --as-of: expected a time like "2026-06-30T18:00:00+08:00", got "last tuesday"'
    )


def add_broken_sources(folder: Path) -> None:
    text = (folder / "config.toml").read_text(encoding="utf-8")
    text += (
        CONFIG.split("[[sources]]")[1]
        .join(["[[sources]]", ""])
        .replace('"county"', '"gone"')
        .replace("source.db", "gone.db")
    )
    text += (
        '\n[[sources]]\nname = "typo"\nurl = "sqlite:///source.db"\n'
        '[sources.queries]\ncases = "SELECT * FROM casez"\n'
    )
    (folder / "config.toml").write_text(text, encoding="utf-8")


def test_a_failing_source_is_one_line_and_the_others_still_run(county: Path) -> None:
    add_broken_sources(county)
    result = watchdog("run", "--once", cwd=county)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any('source "county": read 3 rows' in line for line in lines)
    assert any(
        line.endswith(
            'source "gone": cycle failed: source "gone": cases query failed: '
            "unable to open database file"
        )
        for line in lines
    ), result.stderr
    assert any(
        line.endswith(
            'source "typo": cycle failed: source "typo": cases query failed: no such table: casez'
        )
        for line in lines
    ), result.stderr


def test_the_daemon_stops_gracefully_on_sigterm_and_keeps_serving_good_sources(
    county: Path,
) -> None:
    add_broken_sources(county)
    process = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "run"],
        cwd=county,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    # Two successful cycles of the good source prove the failing ones did not stop it.
    while sum('source "county": read' in line for line in seen) < 2:
        assert time.monotonic() < deadline, "".join(seen)
        seen.append(process.stderr.readline())
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    log = "".join(seen) + rest
    assert process.returncode == 0, log
    assert "received SIGTERM" in log
    assert log.rstrip().endswith("watchdog stopped")
    assert 'source "gone": cycle failed' in log


def test_the_demo_builds_its_county_and_store_from_nothing_and_finds_violations(
    tmp_path: Path,
) -> None:
    root = Path(__file__).resolve().parent.parent
    for name in ("config.toml", "calendar.toml"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    shutil.copytree(root / "rules", tmp_path / "rules")
    result = watchdog("demo", "--once", "--cases", "3000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "demo-source.db").is_file()
    assert 'source "demo": read ' in result.stdout
    assert "合计" in result.stdout
    # --once delivers the outbox once, as the daemon's job would: every message written.
    delivered = re.search(r"delivery: (\d+) sent, 0 to retry, 0 failed", result.stdout)
    assert delivered is not None, result.stdout
    assert len(list((tmp_path / "var" / "outbox").glob("*.eml"))) == int(delivered[1]) > 0
    listed = watchdog("violations", "--format", "jsonl", cwd=tmp_path)
    severities = {json.loads(line)["severity"] for line in listed.stdout.splitlines()}
    assert severities == {"warning", "yellow", "red"}
