"""A SQLite store's write-ahead log is copied back by the watchdog's checkpoint thread,
not inside the commits of its cycles."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from watchdog.app import Watchdog
from watchdog.config import load_settings
from watchdog.store.checkpoint import WalCheckpointer
from watchdog.store.database import create_store_engine, sqlite_file

ROOT = Path(__file__).resolve().parent.parent
ROWS = 3000  # ~3 MB of rows: several hundred pages of log, enough to see where they are


def autocheckpoint(url: str, **options: bool) -> int:
    engine = create_store_engine(url, **options)
    try:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())
    finally:
        engine.dispose()


def test_only_an_engine_asked_to_leaves_checkpoints_to_the_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert autocheckpoint(url) == 1000  # SQLite's own default, for the CLI and the web
    assert autocheckpoint(url, background_checkpoints=True) == 0
    assert sqlite_file(create_store_engine(url)) == tmp_path / "store.db"
    assert sqlite_file(create_store_engine("sqlite://")) is None


def running(checkpointer: WalCheckpointer) -> bool:
    return checkpointer.running


def rows_in_database_file_alone(database: Path, folder: Path) -> int:
    """What the database file holds without its log: a copy of the file alone."""
    alone = folder / "alone.db"
    shutil.copyfile(database, alone)
    connection = sqlite3.connect(alone)
    try:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchall()
        if not tables:
            return 0
        return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        connection.close()


def test_the_thread_copies_the_log_back_into_the_database_file(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    engine = create_store_engine(f"sqlite:///{database}", background_checkpoints=True)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
            connection.execute(
                text("INSERT INTO t (body) VALUES (:body)"),
                [{"body": f"{n:06d}" * 170} for n in range(ROWS)],
            )
        # Committed, but only in the log: no commit copied it back.
        assert rows_in_database_file_alone(database, tmp_path) == 0
        checkpointer = WalCheckpointer(database, interval=0.05).start()
        try:
            deadline = time.monotonic() + 10
            # SQLite's answer: (busy, frames in the log, frames copied back).
            while not (checkpointer.last and 0 < checkpointer.last[1] == checkpointer.last[2]):
                assert time.monotonic() < deadline, f"not copied back: {checkpointer.last}"
                time.sleep(0.05)
        finally:
            checkpointer.stop()  # the file is read below, not while it is written
        assert rows_in_database_file_alone(database, tmp_path) == ROWS
    finally:
        engine.dispose()


def test_a_store_it_cannot_open_is_reported_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no such folder" / "store.db"
    caplog.set_level(logging.WARNING, logger="watchdog.store.checkpoint")
    checkpointer = WalCheckpointer(missing, interval=0.02).start()
    time.sleep(0.3)  # ~15 attempts
    checkpointer.stop()
    assert checkpointer.checkpoints == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert str(missing) in warnings[0] and "retrying" in warnings[0]


def test_the_watchdog_runs_the_thread_for_its_own_sqlite_store(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copy(ROOT / "calendar.toml", tmp_path / "calendar.toml")
    config = (ROOT / "config.toml").read_text(encoding="utf-8")
    store = tmp_path / "var" / "watchdog.db"
    config = config.replace('url = "sqlite:///var/watchdog.db"', f'url = "sqlite:///{store}"')
    (tmp_path / "config.toml").write_text(config, encoding="utf-8")
    watchdog = Watchdog(load_settings(tmp_path / "config.toml"))
    checkpointer = watchdog.checkpointer
    try:
        assert checkpointer is not None and running(checkpointer)
        assert checkpointer.database == store
        with watchdog.store.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
    finally:
        watchdog.close()
    assert not running(checkpointer)
    # A store given by the caller keeps SQLite's own checkpoints.
    given = create_store_engine(f"sqlite:///{store}")
    other = Watchdog(load_settings(tmp_path / "config.toml"), given)
    try:
        assert other.checkpointer is None
    finally:
        other.close()
