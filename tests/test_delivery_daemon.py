"""The daemon delivers its outbox; killed with SIGKILL in the middle of a batch and
restarted, every notice reaches every recipient exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.smtp_server import HOST, PASSWORD, USERNAME, SmtpServer
from tests.test_delivery import FROM, OFFICE, SCJGJ, add_notice
from tests.test_poller import CASES, make_source, row
from watchdog.store import schema
from watchdog.store.database import create_store_engine, upgrade_store

# Daemons killed, outages, timing: run alone (`make pytest` runs the serial ones last).
pytestmark = pytest.mark.serial

RULES = Path(__file__).resolve().parent.parent / "rules"
NOTICES = 25  # two recipients each: 50 deliveries in one batch

CONFIG = """
[store]
url = "{store_url}"

[rules]
dir = "{rules}"

[metrics]
enabled = false

[mail]
sender = "smtp"
from_address = "{sender}"
interval = "1s"
batch_size = 50

[mail.smtp]
host = "{host}"
port = {port}
security = "starttls"
username = "{username}"
password = "${{TEST_SMTP_PASSWORD}}"
timeout = "5s"
ca_file = "smtp-cert.pem"

[[sources]]
name = "county"
url = "sqlite:///source.db"
poll_interval = "60s"

[sources.queries]
cases = \"\"\"{cases}\"\"\"
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    smtp = SmtpServer(tmp_path).start()
    yield smtp
    smtp.stop()


def start_daemon(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "watchdog", "run"],
        cwd=folder,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TEST_SMTP_PASSWORD": PASSWORD},
    )


def states(store: Engine) -> Counter[str]:
    with store.connect() as connection:
        return Counter(connection.scalars(select(schema.deliveries.c.state)))


def test_a_daemon_killed_mid_batch_and_restarted_delivers_everything_exactly_once(
    store_url: str, server: SmtpServer, tmp_path: Path
) -> None:
    make_source(tmp_path, [row("C1", "2026-03-02 10:00:00", limit=20)])
    (tmp_path / "config.toml").write_text(
        CONFIG.format(
            store_url=store_url,
            rules=RULES,
            sender=FROM,
            host=HOST,
            port=server.port,
            username=USERNAME,
            cases=CASES,
        ),
        encoding="utf-8",
    )
    store = create_store_engine(store_url)
    upgrade_store(store)
    for n in range(1, NOTICES + 1):
        add_notice(store, n, [(SCJGJ, "to"), (OFFICE, "cc")])
    server.handler.delay = 0.15  # a slow server: the kill lands while one message is held

    first = start_daemon(tmp_path)
    try:
        server.wait_for(5)
        assert server.handler.in_data.wait(5)  # a message is in DATA, not yet accepted
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    accepted_before = len(server.handler.messages())
    assert 5 <= accepted_before < 2 * NOTICES
    # The attempt in flight is on record, claimed by the dead process.
    assert states(store)["sending"] == 1

    server.handler.delay = 0.0
    second = start_daemon(tmp_path)
    try:
        server.wait_for(2 * NOTICES)
        deadline = time.monotonic() + 20
        while states(store)["sent"] < 2 * NOTICES:
            assert time.monotonic() < deadline, states(store)
            time.sleep(0.05)
        time.sleep(1.2)  # one more delivery interval: nothing may be sent again
    finally:
        second.send_signal(signal.SIGTERM)
        _, log = second.communicate(timeout=30)
    assert second.returncode == 0, log

    received = server.handler.messages()
    copies = Counter((got.message["X-Watchdog-Notice"], got.recipients[0]) for got in received)
    expected = {
        (f"JC-2026-{n:06d}", recipient)
        for n in range(1, NOTICES + 1)
        for recipient in (SCJGJ, OFFICE)
    }
    assert set(copies) == expected
    assert set(copies.values()) == {1}
    with store.connect() as connection:
        rows = connection.execute(select(schema.deliveries)).all()
    assert {r.message_id for r in rows} == {got.message["Message-ID"] for got in received}
    interrupted = [r for r in rows if r.interruptions]
    assert len(interrupted) == 1
    assert interrupted[0].attempts == 2
    assert interrupted[0].last_error.endswith(f"same Message-ID {interrupted[0].message_id}")
    assert all(r.attempts == 1 for r in rows if not r.interruptions)
    assert "interrupted, outcome unknown; sending again with the same Message-ID" in log
    with store.connect() as connection:
        notice_states = Counter(connection.scalars(select(schema.notices.c.state)))
    assert notice_states == {"delivered": NOTICES}
    store.dispose()
