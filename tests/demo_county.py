"""A store holding a small demo county's history, recorded the way the daemon records it:
the synthetic exchange database, the shipped rules and config.toml, cycles at chosen
instants (so violations open, upgrade and resolve), notices issued as they open and
delivered through the config's file sender. For the web tests that want data like
`make demo` shows rather than hand-made findings."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from watchdog.app import Watchdog
from watchdog.config import load_settings
from watchdog.demo import generate_demo_source
from watchdog.notices.delivery import Outbox
from watchdog.notices.senders import FileSender

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Two cycles a month apart: the second upgrades some violations and resolves others,
# so timelines hold more than the opening.
INSTANTS = (
    datetime(2026, 5, 28, 18, tzinfo=SHANGHAI),
    datetime(2026, 6, 28, 18, tzinfo=SHANGHAI),
)


def record_demo_county(store: Engine, store_url: str, folder: Path, cases: int = 600) -> None:
    """Record the demo county's history into `store` (at `store_url`); the county's
    config, source and outbox are made in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    generate_demo_source(folder / "var" / "demo-source.db", cases=cases, seed=2026)
    shutil.copytree(ROOT / "rules", folder / "rules")
    shutil.copy(ROOT / "calendar.toml", folder / "calendar.toml")
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    shipped = 'url = "sqlite:///var/watchdog.db"'
    assert shipped in text, f"{ROOT / 'config.toml'}: [store] url is no longer {shipped}"
    (folder / "config.toml").write_text(text.replace(shipped, f'url = "{store_url}"'), "utf-8")
    settings = load_settings(folder / "config.toml")
    now = [INSTANTS[0]]
    watchdog = Watchdog(settings, store, clock=lambda: now[0])
    outbox = Outbox(store, settings.mail, FileSender(folder / "var" / "outbox"))
    try:
        for instant in INSTANTS:
            now[0] = instant
            report = watchdog.run_cycle("demo")
            assert report.error is None, report.error
            assert report.evaluation is not None and not report.evaluation.errors
            outbox.deliver_due(instant)
    finally:
        watchdog.close()
