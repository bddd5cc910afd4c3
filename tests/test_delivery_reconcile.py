"""Rows left "sending" by a daemon that died: reconciled, never silently sent again."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, update

from tests.smtp_server import SmtpServer
from tests.test_delivery import (
    FROM,
    OFFICE,
    SCJGJ,
    T0,
    add_notice,
    mail_settings,
    notice_state,
    rows,
    smtp_outbox,
)
from watchdog.notices.delivery import Outbox
from watchdog.notices.mail_settings import MailSettings
from watchdog.notices.senders import FileSender
from watchdog.store import schema
from watchdog.store.database import upgrade_store


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    smtp = SmtpServer(tmp_path).start()
    yield smtp
    smtp.stop()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def leave_sending(store: Engine, recipient: str, claimed_by: str, claimed_at: object) -> None:
    """What a daemon killed after its claim committed leaves behind."""
    table = schema.deliveries
    with store.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.recipient == recipient)
            .values(
                state="sending",
                claimed_by=claimed_by,
                claimed_at=claimed_at,
                attempts=1,
                message_id=f"<JC-2026-000001.{recipient[:5]}.abc@dongyang.example.gov.cn>",
            )
        )


def test_a_crash_between_the_server_accepting_and_the_record_resends_with_the_same_message_id(
    store: Engine, server: SmtpServer, tmp_path: Path
) -> None:
    """The one window no design closes over SMTP: the duplicate is traced and identifiable."""
    add_notice(store, 1, [(SCJGJ, "to")])
    settings = mail_settings(server.port, tmp_path)
    dead = smtp_outbox(store, settings, instance="elsewhere:1:dead")
    claim = dead.claim(rows(store)[SCJGJ].id, T0)
    assert claim is not None
    dead.sender.send(dead.message_for(claim))  # accepted by the server; then "killed"
    dead.sender.close()

    later = T0 + settings.lease + timedelta(seconds=1)
    restarted = smtp_outbox(store, settings, instance="elsewhere:2:new")
    assert restarted.reconcile(later) == 1
    row = rows(store)[SCJGJ]
    assert (row.state, row.attempts, row.interruptions, row.next_attempt_at) == (
        "pending",
        1,
        1,
        later,
    )
    assert row.last_error == (
        f"attempt 1 by elsewhere:1:dead interrupted, outcome unknown; sent again with the "
        f"same Message-ID {claim.message_id}"
    )
    assert restarted.deliver_due(later).sent == 1
    copies = [m.message["Message-ID"] for m in server.handler.messages()]
    assert copies == [claim.message_id, claim.message_id]
    row = rows(store)[SCJGJ]
    assert (row.state, row.attempts, row.interruptions) == ("sent", 2, 1)


def test_claims_of_a_live_daemon_are_left_alone_and_stale_ones_are_taken_back(
    store: Engine, server: SmtpServer, tmp_path: Path
) -> None:
    add_notice(store, 1, [(SCJGJ, "to"), (OFFICE, "cc"), ("lingdao@example.gov.cn", "cc")])
    add_notice(store, 2, [("fgw@example.gov.cn", "to")])
    settings = mail_settings(server.port, tmp_path)
    here = socket.gethostname()
    leave_sending(store, SCJGJ, "otherhost:77:live", T0 - timedelta(seconds=5))  # in flight
    leave_sending(store, OFFICE, f"{here}:{dead_pid()}:gone", T0 - timedelta(seconds=5))
    leave_sending(store, "lingdao@example.gov.cn", "otherhost:78:old", T0 - settings.lease * 2)
    leave_sending(store, "fgw@example.gov.cn", f"{here}:{os.getpid()}:peer", T0)  # alive

    outbox = smtp_outbox(store, settings, instance=f"{here}:{os.getpid()}:me")
    assert outbox.reconcile(T0) == 2

    states = {r: (row.state, row.claimed_by) for r, row in rows(store).items()}
    assert states[SCJGJ] == ("sending", "otherhost:77:live")
    assert states["fgw@example.gov.cn"] == ("sending", f"{here}:{os.getpid()}:peer")
    assert states[OFFICE][0] == "pending"
    assert states["lingdao@example.gov.cn"][0] == "pending"
    assert outbox.deliver_due(T0).sent == 2
    # The live daemon's claim is still its own: nothing of it was sent again.
    assert sorted(m.recipients[0] for m in server.handler.messages()) == [
        "lingdao@example.gov.cn",
        OFFICE,
    ]


def test_a_stale_claim_out_of_attempts_fails_instead_of_sending_again(
    store: Engine, tmp_path: Path
) -> None:
    add_notice(store, 1, [(SCJGJ, "to")])
    settings = mail_settings(1, tmp_path, max_attempts=1)
    leave_sending(store, SCJGJ, "otherhost:1:x", T0 - settings.lease * 2)
    assert smtp_outbox(store, settings).reconcile(T0) == 1
    row = rows(store)[SCJGJ]
    assert (row.state, row.permanent) == ("failed", False)
    assert (
        row.last_error
        == "attempt 1 by otherhost:1:x interrupted (the last allowed); not sent again"
    )


def test_the_file_sender_knows_whether_an_interrupted_message_was_written(
    store: Engine, tmp_path: Path
) -> None:
    notice = add_notice(store, 1, [(SCJGJ, "to"), (OFFICE, "cc")])
    folder = tmp_path / "outbox"
    settings = MailSettings(sender="file", outbox=folder, from_address=FROM)
    sender = FileSender(folder)
    dead = Outbox(store, settings, sender, instance="elsewhere:1:dead")
    written = dead.claim(rows(store)[SCJGJ].id, T0)
    not_written = dead.claim(rows(store)[OFFICE].id, T0)
    assert written is not None and not_written is not None
    sender.send(dead.message_for(written))  # killed after writing, before recording

    later = T0 + settings.lease + timedelta(seconds=1)
    restarted = Outbox(store, settings, sender, instance="elsewhere:2:new")
    assert restarted.reconcile(later) == 2
    after = rows(store)
    assert (after[SCJGJ].state, after[SCJGJ].delivered_at, after[SCJGJ].interruptions) == (
        "sent",
        later,
        0,
    )
    assert (after[OFFICE].state, after[OFFICE].interruptions) == ("pending", 0)
    assert after[OFFICE].last_error == (
        "attempt 1 by elsewhere:1:dead interrupted before the message was written; sent again"
    )
    assert restarted.deliver_due(later).sent == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [sender.path_of(written.message_id).name, sender.path_of(not_written.message_id).name]
    )
    assert notice_state(store, notice) == "delivered"


def test_an_outcome_the_store_refused_is_recorded_at_the_next_run_not_sent_again(
    server: SmtpServer, tmp_path: Path
) -> None:
    path = tmp_path / "store.db"
    store = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    upgrade_store(store)
    add_notice(store, 1, [(SCJGJ, "to")])
    blocker = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    blocker.execute("PRAGMA journal_mode=WAL")  # as the daemon's store: readers go on
    # The store is locked by someone else the moment the server accepts the message.

    def lock_the_store() -> None:
        blocker.execute("BEGIN EXCLUSIVE")

    server.handler.on_accept = lock_the_store
    outbox = smtp_outbox(store, mail_settings(server.port, tmp_path))

    assert outbox.run().sent == 0  # sent, but the outcome could not be stored
    assert rows(store)[SCJGJ].state == "sending"
    blocker.execute("COMMIT")
    server.handler.on_accept = None

    outbox.run()
    row = rows(store)[SCJGJ]
    assert (row.state, row.attempts, row.interruptions) == ("sent", 1, 0)
    assert len(server.handler.messages()) == 1
    blocker.close()
    store.dispose()
