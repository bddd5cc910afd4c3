"""Several daemons on one store: one leads each source and the delivery at a time.

Real daemon processes on a real PostgreSQL store; the leader is killed with SIGKILL and
a follower must take over within two poll intervals without any work done twice. On a
SQLite store a second daemon refuses to start, naming the store and the holder's pid.

Also the harness the fault and soak tests share: daemon processes with their own log
files, a SQLite source a writer keeps changing, and checks over the store.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, text

from tests.test_poller import CASES
from watchdog.app import Watchdog
from watchdog.config import load_settings
from watchdog.leadership import (
    AdvisoryLeadership,
    StoreLock,
    advisory_key,
    source_unit,
)
from watchdog.store import schema
from watchdog.store.database import create_store_engine, upgrade_store

# Daemons killed, outages, timing: run alone (`make pytest` runs the serial ones last).
pytestmark = pytest.mark.serial

RULES = Path(__file__).resolve().parent.parent / "rules"
SHANGHAI = ZoneInfo("Asia/Shanghai")

# ---------------------------------------------------------------- the shared harness


def source_config(name: str, interval: str, url: str | None = None) -> str:
    return (
        f'\n[[sources]]\nname = "{name}"\nurl = "{url or f"sqlite:///{name}.db"}"\n'
        f'poll_interval = "{interval}"\noverlap = "1m"\n'
        f'[sources.queries]\ncases = """{CASES}"""\n'
    )


def daemon_config(
    store_url: str,
    sources: list[str],
    *,
    interval: str = "1s",
    metrics_port: int | None = None,
    notices: bool = False,
) -> str:
    """A config.toml for a daemon over SQLite sources `<name>.db` in its folder."""
    text_ = f'[store]\nurl = "{store_url}"\n\n[rules]\ndir = "{RULES}"\n\n'
    if metrics_port is None:
        text_ += "[metrics]\nenabled = false\n\n"
    else:
        text_ += f'[metrics]\naddress = "127.0.0.1"\nport = {metrics_port}\n\n'
    text_ += '[mail]\nsender = "file"\noutbox = "outbox"\ninterval = "1s"\n\n'
    if notices:
        text_ += '[notices]\nenabled = true\nsupervision_office = ["office@example.gov.cn"]\n'
    return text_ + "".join(source_config(name, interval) for name in sources)


class DaemonProcess:
    """`watchdog run` in a real process, its stderr in `<folder>/<name>.log`."""

    def __init__(self, folder: Path, config: Path, name: str, *args: str) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        # A restarted daemon appends to the same file; its own part starts here.
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("a", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "watchdog", "run", "--config", str(config), *args],
                cwd=folder,
                stderr=log,
                stdout=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """What this process (not an earlier one of the same name) logged."""
        with self.log_path.open("rb") as file:
            file.seek(self.offset)
            return file.read().decode("utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_for(self, needle: str, timeout: float = 60, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(needle) < count:
            assert self.alive(), f"{self.name} exited {self.process.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"{self.name}: no {needle!r}:\n{self.log()}"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait; the exit status."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def running_daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts; any left running are killed at the end (a fixture body)."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    yield from running_daemons()


def local(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class ChangingSource:
    """A SQLite source of `cases` rows whose promised limits a writer keeps flipping.

    Every case was accepted on 2026-03-02: a limit of 5 working days is long overdue
    (a red violation), one of 400 is not (none), so each flip opens or resolves one.
    """

    path: Path
    cases: int = 20
    flips: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        with sqlite3.connect(self.path) as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS cases "
                "(id TEXT PRIMARY KEY, dept TEXT, accepted TEXT, lim INTEGER, changed TEXT)"
            )
            connection.executemany(
                "INSERT OR REPLACE INTO cases VALUES (?, 'SCJGJ', '2026-03-02 10:00:00', ?, ?)",
                [
                    (self.case_id(n), 5 if n % 2 else 400, local(datetime.now()))
                    for n in range(self.cases)
                ],
            )

    @staticmethod
    def case_id(n: int) -> str:
        return f"C{n:05d}"

    def flip(self, n: int) -> None:
        """Change one case: its limit flips, its updated_at is now."""
        with sqlite3.connect(self.path, timeout=30) as connection:
            connection.execute(
                "UPDATE cases SET lim = CASE lim WHEN 5 THEN 400 ELSE 5 END, changed = ? "
                "WHERE id = ?",
                (local(datetime.now()), self.case_id(n % self.cases)),
            )
        self.flips[self.case_id(n % self.cases)] += 1


def open_violations(store: Engine) -> set[tuple[str, str, str, str]]:
    v = schema.violations
    with store.connect() as connection:
        rows = connection.execute(
            select(v.c.source, v.c.case_id, v.c.rule_id, v.c.severity).where(v.c.state == "open")
        ).all()
    return {(r.source, r.case_id or "", r.rule_id, r.severity) for r in rows}


def contested_violations(store: Engine) -> set[tuple[str, str, str, str]]:
    """Open violations a source revision contests: the source changed a field their
    verdict rests on (a flipped limit is one), so they stay open by design and the
    data_altered rule reports the change (watchdog.engine.contest)."""
    v = schema.violations
    with store.connect() as connection:
        rows = connection.execute(
            select(v.c.source, v.c.case_id, v.c.rule_id, v.c.severity).where(
                v.c.state == "open", v.c.contested_by_revision.is_not(None)
            )
        ).all()
    return {(r.source, r.case_id or "", r.rule_id, r.severity) for r in rows}


def fully_evaluated(config: Path, store: Engine) -> set[tuple[str, str, str, str]]:
    """The open violations a full dry-run evaluation of the stored rows says there
    should be now, in `open_violations`' form: its findings, except that a contested
    violation stays open as it is (whatever the evaluation now finds for its case)."""
    watchdog = Watchdog(load_settings(config), store)
    found: set[tuple[str, str, str, str]] = set()
    for source in watchdog.settings.sources:
        result = watchdog.evaluate(source.name, watchdog.clock(), record=False)
        found |= {(f.source, f.case_id or "", f.rule_id, f.severity) for f in result.findings}
    watchdog.close()
    contested = contested_violations(store)
    held = {(source, case, rule) for source, case, rule, _ in contested}
    return {f for f in found if f[:3] not in held} | contested


def event_problems(store: Engine) -> list[str]:
    """Violation histories that are not opened, then upgraded, resolved and reopened in
    order, with at most one `contested` while open and nothing but upgrades after it (a
    contested violation is never resolved): a change recorded twice by two daemons (or
    a replayed cycle) breaks that order."""
    e = schema.violation_events
    with store.connect() as connection:
        rows = connection.execute(
            select(e.c.violation_id, e.c.event).order_by(e.c.violation_id, e.c.id)
        ).all()
    follows = {
        None: {"opened"},
        "opened": {"upgraded", "resolved", "contested"},
        "upgraded": {"upgraded", "resolved", "contested"},
        "resolved": {"reopened"},
        "reopened": {"upgraded", "resolved", "contested"},
        "contested": {"upgraded"},
    }
    problems: list[str] = []
    last: dict[int, str | None] = {}
    contested: set[int] = set()
    for violation_id, event in rows:
        before = last.get(violation_id)
        allowed = follows[before] - (
            {"resolved", "contested"} if violation_id in contested else set()
        )
        if event not in allowed:
            problems.append(f"violation {violation_id}: {event} after {before}")
        if event == "contested":
            contested.add(violation_id)
        last[violation_id] = event
    return problems


def source_state(store: Engine, source: str) -> tuple[int, int]:
    """(poll_seq, evaluated_seq) of one source."""
    s = schema.source_state
    with store.connect() as connection:
        row = connection.execute(
            select(s.c.poll_seq, s.c.evaluated_seq).where(s.c.source == source)
        ).first()
    return (int(row.poll_seq), int(row.evaluated_seq)) if row else (0, 0)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `condition` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def settled(store: Engine, source: str, after_seq: int) -> Callable[[], bool]:
    """True once a cycle that began after `after_seq` has been evaluated."""

    def check() -> bool:
        poll_seq, evaluated_seq = source_state(store, source)
        return evaluated_seq > after_seq and evaluated_seq == poll_seq

    return check


# ------------------------------------------------------------ PostgreSQL: the audit

AUDIT = """
CREATE TABLE poll_audit (
    id serial PRIMARY KEY, source text, poll_seq int, what text, app text,
    at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION audit_poll() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.poll_seq <> OLD.poll_seq THEN
        INSERT INTO poll_audit (source, poll_seq, what, app)
        VALUES (NEW.source, NEW.poll_seq, 'start', current_setting('application_name'));
    END IF;
    IF NEW.last_success_at IS DISTINCT FROM OLD.last_success_at
       OR NEW.last_error_at IS DISTINCT FROM OLD.last_error_at THEN
        INSERT INTO poll_audit (source, poll_seq, what, app)
        VALUES (NEW.source, NEW.poll_seq, 'end', current_setting('application_name'));
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_poll AFTER UPDATE ON source_state
    FOR EACH ROW EXECUTE FUNCTION audit_poll();
"""


def install_audit(store: Engine) -> None:
    """Record in the store which daemon (its application_name) starts and ends each
    cycle of each source: the witness that two never poll one source at once."""
    with store.begin() as connection:
        connection.exec_driver_sql(AUDIT)


def audit(store: Engine, source: str) -> list[tuple[str, str, float]]:
    with store.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT what, app, extract(epoch FROM at) FROM poll_audit "
                "WHERE source = :source ORDER BY id"
            ),
            {"source": source},
        ).all()
    return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]


def leader_pid(store: Engine, unit: str) -> int | None:
    """The OS pid of the daemon whose lock session holds `unit`'s advisory lock."""
    with store.connect() as connection:
        identity = connection.scalar(text("SELECT current_database() || '.' || current_schema()"))
        key = advisory_key(str(identity), unit)
        app = connection.scalar(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = "
                "current_database()) AND l.classid = :high AND l.objid = :low "
                "AND l.objsubid = 1"
            ),
            {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
        )
    return int(str(app).rsplit(" ", 1)[1]) if app else None


def overlapping_cycles(
    trail: list[tuple[str, str, float]], deaths: dict[str, list[float]]
) -> list[str]:
    """Cycles of one source that two daemons ran at once.

    A start by one daemon while another's cycle is open is fine only if that other
    daemon had been killed before it (its cycle will never end)."""
    problems: list[str] = []
    running: tuple[str, float] | None = None
    for what, app, at in trail:
        if what == "start":
            if running is not None and running[0] != app:
                died = [t for t in deaths.get(running[0], []) if running[1] <= t <= at]
                if not died:
                    problems.append(f"{app} started at {at:.3f} while {running[0]} polled")
            running = (app, at)
        elif running is not None and running[0] == app:
            running = None
    return problems


# ------------------------------------------------------------------------ the tests

INTERVAL = 3.0  # seconds: a follower must lead within 2 × this after the leader dies
KILLS = 5


@pytest.mark.parametrize("backend", ["postgresql"])
def test_three_daemons_poll_each_source_once_at_a_time_and_a_follower_takes_over_a_killed_leader(
    store_url: str, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    sources = {name: ChangingSource(tmp_path / f"{name}.db") for name in ("north", "south")}
    store = create_store_engine(store_url)
    upgrade_store(store)
    install_audit(store)
    configs: dict[str, Path] = {}
    for n in (1, 2, 3):
        name = f"d{n}"
        configs[name] = tmp_path / f"{name}.toml"
        configs[name].write_text(
            daemon_config(
                f"{store_url}&application_name={name}", list(sources), interval=f"{INTERVAL:g}s"
            ),
            encoding="utf-8",
        )
    by_pid: dict[int, DaemonProcess] = {}

    def start(name: str) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path, configs[name], name)
        daemons.append(daemon)
        by_pid[daemon.pid] = daemon
        return daemon

    for name in configs:
        start(name).wait_for("watchdog started")
    deaths: dict[str, list[float]] = {}
    takeovers: list[float] = []
    writes = 0
    for _ in range(KILLS):
        wait_until(
            lambda: all(leader_pid(store, source_unit(s)) in by_pid for s in sources),
            30,
            "a leader for every source",
        )
        for _ in range(6):
            for source in sources.values():
                source.flip(writes)
            writes += 1
        victim = by_pid[leader_pid(store, source_unit("north")) or 0]
        led = [s for s in sources if leader_pid(store, source_unit(s)) == victim.pid]
        seq_before = {s: source_state(store, s)[0] for s in led}
        victim.kill()
        killed_at = time.time()
        deaths.setdefault(victim.name, []).append(killed_at)
        for name in led:
            # The next poll of the source is by another daemon, within two intervals.
            before = seq_before[name]
            wait_until(
                lambda name=name, before=before: source_state(store, name)[0] > before,  # type: ignore[misc]
                30,
                f"a follower polls {name}",
            )
            takeovers.append(time.time() - killed_at)
            new = leader_pid(store, source_unit(name))
            assert new is not None and new != victim.pid
        # Back as a follower. The next leader must be killed only once it runs: on busy
        # cores a daemon takes seconds to start, and a takeover by a process that was
        # still starting would time the start-up, not the follower's next try.
        start(victim.name).wait_for("watchdog started")

    # Let every change of the last round be polled and evaluated, then stop everyone.
    for name in sources:
        wait_until(settled(store, name, source_state(store, name)[0]), 30, f"{name} settles")
    statuses = [d.stop() for d in daemons if d.alive()]
    assert statuses == [0, 0, 0]

    print(f"takeover seconds after SIGKILL: {', '.join(f'{t:.2f}' for t in takeovers)}")
    assert max(takeovers) < 2 * INTERVAL, takeovers
    for name in sources:
        trail = audit(store, name)
        assert overlapping_cycles(trail, deaths) == [], trail
        # Every cycle started was by one daemon; poll sequence numbers never repeat.
        starts = [app for what, app, _ in trail if what == "start"]
        assert len(set(starts)) >= 2  # the source did change hands
    assert event_problems(store) == []
    assert open_violations(store) == fully_evaluated(configs["d1"], store)
    logs = "".join(d.log() for d in daemons)
    assert 'leadership of "source:north" gained' in logs
    assert 'leadership of "delivery" gained' in logs
    store.dispose()


def test_a_second_daemon_on_a_sqlite_store_refuses_to_start_naming_the_store_and_the_holder(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    ChangingSource(tmp_path / "north.db")
    store_file = tmp_path / "store.db"
    config = tmp_path / "config.toml"
    config.write_text(daemon_config(f"sqlite:///{store_file}", ["north"]), encoding="utf-8")
    upgrade_store(create_store_engine(f"sqlite:///{store_file}"))
    first = DaemonProcess(tmp_path, config, "first")
    daemons.append(first)
    first.wait_for('source "north": read')

    second = DaemonProcess(tmp_path, config, "second")
    daemons.append(second)
    assert second.process.wait(60) == 1
    lock = tmp_path / "store.db.lock"
    expected = (
        f"refusing to start: store {store_file} is in use by another watchdog (pid "
        f"{first.pid}, lock file {lock}); a SQLite store takes one daemon at a time — stop "
        "that one, or use a PostgreSQL store to run several"
    )
    assert second.log().splitlines()[-1].endswith(expected), second.log()

    once = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "--once", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert once.returncode == 2
    assert once.stderr.splitlines()[-1] == f"error: {expected.removeprefix('refusing to start: ')}"

    # The OS frees the lock of a killed daemon: the next one starts.
    first.kill()
    third = DaemonProcess(tmp_path, config, "third")
    daemons.append(third)
    third.wait_for('source "north": read')
    assert third.stop() == 0
    assert "refusing" not in third.log()


def test_the_sqlite_store_lock_is_shared_within_a_process_and_refused_to_another(
    tmp_path: Path,
) -> None:
    store_file = tmp_path / "store.db"
    first = StoreLock.acquire(store_file)
    again = StoreLock.acquire(store_file)  # the daemon inside `run`: the same lock
    assert again is first
    probe = (
        "import sys; from pathlib import Path; from watchdog.leadership import StoreLock\n"
        "try:\n    StoreLock.acquire(Path(sys.argv[1]))\nexcept Exception as exc:\n"
        "    print(exc); sys.exit(1)\n"
    )

    def other_process() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", probe, str(store_file)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    refused = other_process()
    assert refused.returncode == 1
    assert f"(pid {os.getpid()}, lock file {store_file}.lock)" in refused.stdout
    first.release()
    assert other_process().returncode == 1  # still held once
    again.release()
    assert other_process().returncode == 0


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_lock_session_that_is_terminated_loses_leadership_and_takes_it_again(
    store: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = AdvisoryLeadership(store), AdvisoryLeadership(store)
    try:
        assert first.holds("source:north")
        assert first.holds("source:north")  # still
        assert not second.holds("source:north")
        assert second.holds("source:south")
        # The first daemon's lock session ends (a restarted server, a cut connection).
        assert first.backend_pid is not None
        with store.connect() as connection:
            assert connection.scalar(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": first.backend_pid}
            )
        caplog.clear()
        with caplog.at_level("INFO", "watchdog.leadership"):
            assert not first.holds("source:north")  # lost: says so, does not raise
            assert second.holds("source:north")  # a follower takes it
            assert not first.holds("source:north")
        messages = [r.getMessage() for r in caplog.records]
        assert any(
            m.startswith('leadership of "source:north" lost: lock connection failed: ')
            for m in messages
        ), messages
        assert any(m.startswith('leadership of "source:north" gained') for m in messages)
    finally:
        first.close()
        second.close()


def test_advisory_keys_are_stable_signed_64_bit_and_per_store() -> None:
    key = advisory_key("watchdog.public", "source:north")
    assert key == advisory_key("watchdog.public", "source:north")
    assert -(2**63) <= key < 2**63
    assert key != advisory_key("watchdog.store_2", "source:north")
    assert key != advisory_key("watchdog.public", "source:south")
