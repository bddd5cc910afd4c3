"""Incremental evaluation gives the same violations as a full evaluation (demo data)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from watchdog.app import Watchdog
from watchdog.config import load_settings
from watchdog.demo import generate_demo_source
from watchdog.violations_query import open_findings

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
INSTANTS = [datetime(2026, month, 28, 18, tzinfo=SHANGHAI) for month in (3, 5, 6, 9, 12)]


def test_cycles_over_months_record_what_one_full_evaluation_finds(
    store: Engine, store_url: str, tmp_path: Path
) -> None:
    """The demo's rows run to the end of 2026, so between cycles cases complete, steps
    and fees come into effect and inspections happen without any row changing: exactly
    what an incremental pass must not miss."""
    generate_demo_source(tmp_path / "var" / "demo-source.db", cases=2500, seed=7)
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copy(ROOT / "calendar.toml", tmp_path / "calendar.toml")
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/watchdog.db"', f'url = "{store_url}"')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    now = [INSTANTS[0]]
    watchdog = Watchdog(load_settings(tmp_path / "config.toml"), store, clock=lambda: now[0])
    for instant in INSTANTS:
        now[0] = instant
        report = watchdog.run_cycle("demo")
        assert report.error is None, report.error
        assert report.evaluation is not None and not report.evaluation.errors

        recorded = {f.fingerprint: f.severity for f in open_findings(store)}
        full = watchdog.evaluate("demo", instant, record=False).findings
        assert recorded == {f.fingerprint: f.severity for f in full}, instant
    kinds = {f.kind for f in open_findings(store)}
    assert kinds == {"overdue", "procedure", "fee", "inspection", "pattern"}
    watchdog.close()
