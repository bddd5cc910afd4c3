"""Delivery through a real SMTP server (aiosmtpd with STARTTLS and AUTH): content,
retries with backoff, permanent failures per recipient, claims, the file sender."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from tests.smtp_server import HOST, PASSWORD, USERNAME, SmtpServer, free_port
from watchdog.notices.delivery import Outbox
from watchdog.notices.mail_settings import MailSettings, SmtpSettings
from watchdog.notices.senders import FileSender, SmtpSender
from watchdog.store import schema

T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
FROM = "东阳县效能办 <xiaonengban@dongyang.example.gov.cn>"
SCJGJ = "scjgj@dongyang.example.gov.cn"
OFFICE = "xiaonengban@dongyang.example.gov.cn"
LEADER = "lingdao@dongyang.example.gov.cn"
SUBJECT = "整改通知书 JC-2026-{n:06d}：东阳县市场监督管理局 办件超期（黄牌）"
BODY = (
    "东阳县市场监督管理局：\n\n经电子监察系统监测，你单位办理的食品经营许可（办件编号 "
    "SP-{n}）已超过承诺时限 3 个工作日。\n请于 2026年6月12日 前完成整改并书面回复。\n"
)


# ---- fixture: notices and their outbox rows, as the notices core writes them ----------


def add_notice(
    store: Engine,
    n: int,
    recipients: Sequence[tuple[str, str]] = ((SCJGJ, "to"), (OFFICE, "cc")),
    issued_at: datetime = T0,
) -> int:
    """A rendered notice JC-2026-<n> and one pending delivery row per recipient."""
    number = f"JC-2026-{n:06d}"
    with store.begin() as connection:
        notice_id = connection.execute(
            insert(schema.notices).values(
                number=number,
                year=2026,
                kind="rectification",
                dept_code="SCJGJ",
                dept_name="东阳县市场监督管理局",
                severity="yellow",
                state="issued",
                subject=SUBJECT.format(n=n),
                body_text=BODY.format(n=n),
                body_html=f"<p>{BODY.format(n=n)}</p>",
                issued_at=issued_at,
                updated_at=issued_at,
            )
        ).inserted_primary_key
        assert notice_id is not None
        notice_id = notice_id[0]
        for recipient, role in recipients:
            connection.execute(
                insert(schema.deliveries).values(
                    notice_id=notice_id,
                    recipient=recipient,
                    role=role,
                    state="pending",
                    attempts=0,
                    permanent=False,
                    next_attempt_at=issued_at,
                    created_at=issued_at,
                )
            )
    assert isinstance(notice_id, int)
    return notice_id


def rows(store: Engine) -> dict[str, Any]:
    """The outbox rows by recipient (one notice in most tests)."""
    with store.connect() as connection:
        found = connection.execute(select(schema.deliveries).order_by("id")).all()
    return {row.recipient: row for row in found}


def notice_state(store: Engine, notice_id: int) -> str:
    with store.connect() as connection:
        state = connection.scalar(
            select(schema.notices.c.state).where(schema.notices.c.id == notice_id)
        )
    return str(state)


def mail_settings(port: int, folder: Path, security: str = "starttls", **more: Any) -> MailSettings:
    smtp = SmtpSettings(
        host=HOST,
        port=port,
        security=security,
        username="" if security == "plain" else USERNAME,
        password="" if security == "plain" else PASSWORD,
        timeout=timedelta(seconds=5),
        ca_file=folder / "smtp-cert.pem",
    )
    return MailSettings(sender="smtp", from_address=FROM, smtp=smtp, **more)


def smtp_outbox(store: Engine, settings: MailSettings, instance: str = "test:1:a") -> Outbox:
    return Outbox(store, settings, SmtpSender(settings.smtp), instance=instance)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    smtp = SmtpServer(tmp_path).start()
    yield smtp
    smtp.stop()


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


# ---- content -----------------------------------------------------------------------------


def test_each_recipient_gets_its_own_chinese_multipart_mail_over_starttls_with_auth(
    store: Engine, server: SmtpServer, tmp_path: Path
) -> None:
    notice = add_notice(store, 7, [(SCJGJ, "to"), (OFFICE, "cc"), (LEADER, "cc")])
    outbox = smtp_outbox(store, mail_settings(server.port, tmp_path))

    report = outbox.deliver_due(T0)

    assert (report.sent, report.retrying, report.failed) == (3, 0, 0)
    received = server.handler.messages()
    assert [r.recipients for r in received] == [[SCJGJ], [OFFICE], [LEADER]]
    assert {r.sender for r in received} == {OFFICE}
    stored = rows(store)
    for got in received:
        message = parse(got.data)
        assert (
            message["Subject"] == "整改通知书 JC-2026-000007：东阳县市场监督管理局 办件超期（黄牌）"
        )
        assert "=?utf-8?" in got.data.decode("ascii").split("\r\n\r\n")[0]  # encoded on the wire
        assert message["X-Watchdog-Notice"] == "JC-2026-000007"
        assert message["To"] == SCJGJ
        assert message["Cc"] == f"{OFFICE}, {LEADER}"
        assert message["From"] == FROM
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        assert text.get_content_charset() == "utf-8"
        assert text.get_content() == BODY.format(n=7).replace("\n", "\r\n")  # canonical
        assert "请于 2026年6月12日 前完成整改" in html.get_content()
        recipient = got.recipients[0]
        assert message["Message-ID"] == stored[recipient].message_id
    assert len({r.message_id for r in stored.values()}) == 3
    assert all(r.message_id.startswith("<JC-2026-000007.") for r in stored.values())
    assert all(r.message_id.endswith("@dongyang.example.gov.cn>") for r in stored.values())
    for row in stored.values():
        assert (row.state, row.attempts, row.delivered_at, row.permanent) == ("sent", 1, T0, False)
    assert notice_state(store, notice) == "delivered"


# aiosmtpd counts only STARTTLS as TLS for AUTH and warns about the implicit TLS server.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["tls", "plain"])
def test_implicit_tls_and_plain_servers_are_reached_too(tmp_path: Path, security: str) -> None:
    from watchdog.store.database import create_store_engine, upgrade_store

    store = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade_store(store)
    server = SmtpServer(tmp_path, security=security).start()
    try:
        add_notice(store, 1, [(SCJGJ, "to")])
        report = smtp_outbox(store, mail_settings(server.port, tmp_path, security)).deliver_due(T0)
        assert report.sent == 1, rows(store)[SCJGJ].last_error
        assert server.handler.messages()[0].recipients == [SCJGJ]
    finally:
        server.stop()
        store.dispose()


# ---- retries and failures --------------------------------------------------------------


def test_a_server_down_at_first_is_retried_after_the_backoff_and_delivers_once(
    store: Engine, tmp_path: Path
) -> None:
    port = free_port()
    add_notice(store, 1)
    settings = mail_settings(port, tmp_path)
    SmtpServer(tmp_path, port=free_port())  # makes the certificate; never started
    outbox = smtp_outbox(store, settings)

    first = outbox.deliver_due(T0)

    assert (first.sent, first.retrying, first.failed) == (0, 1, 0)
    assert first.stopped_by is not None and f"127.0.0.1:{port}" in first.stopped_by
    before = rows(store)
    assert before[SCJGJ].state == "pending"
    assert before[SCJGJ].attempts == 1
    assert before[SCJGJ].next_attempt_at == T0 + timedelta(minutes=1)
    assert before[SCJGJ].permanent is False
    assert f"127.0.0.1:{port}" in before[SCJGJ].last_error
    # The server is down for everyone: the second recipient waits without a wasted attempt.
    assert (before[OFFICE].state, before[OFFICE].attempts) == ("pending", 0)

    server = SmtpServer(tmp_path, port=port).start()
    try:
        early = outbox.deliver_due(T0 + timedelta(seconds=59))
        assert (early.sent, early.retrying) == (1, 0)  # only the row not backing off
        later = outbox.deliver_due(T0 + timedelta(minutes=1))
        assert later.sent == 1
        assert sorted(r.recipients[0] for r in server.handler.messages()) == sorted([OFFICE, SCJGJ])
        after = rows(store)
        assert (after[SCJGJ].state, after[SCJGJ].attempts) == ("sent", 2)
        assert after[SCJGJ].delivered_at == T0 + timedelta(minutes=1)
        assert outbox.deliver_due(T0 + timedelta(hours=1)).sent == 0
        assert len(server.handler.messages()) == 2
    finally:
        server.stop()


def test_a_recipient_refused_with_550_fails_permanently_and_the_others_are_delivered(
    store: Engine, server: SmtpServer, tmp_path: Path
) -> None:
    notice = add_notice(store, 3, [(SCJGJ, "to"), (OFFICE, "cc"), (LEADER, "cc")])
    server.handler.refuse[OFFICE] = "550 5.1.1 <xiaonengban@dongyang.example.gov.cn>: no such user"
    outbox = smtp_outbox(store, mail_settings(server.port, tmp_path))

    report = outbox.deliver_due(T0)

    assert (report.sent, report.retrying, report.failed) == (2, 0, 1)
    assert sorted(r.recipients[0] for r in server.handler.messages()) == [LEADER, SCJGJ]
    refused = rows(store)[OFFICE]
    assert (refused.state, refused.permanent, refused.attempts) == ("failed", True, 1)
    assert refused.last_error == "550 5.1.1 <xiaonengban@dongyang.example.gov.cn>: no such user"
    assert refused.delivered_at is None
    assert notice_state(store, notice) == "issued"  # not every recipient has it
    assert outbox.deliver_due(T0 + timedelta(days=1)).failed == 0  # never retried
    assert rows(store)[OFFICE].attempts == 1


def test_451_is_retried_with_a_doubling_backoff(
    store: Engine, server: SmtpServer, tmp_path: Path
) -> None:
    add_notice(store, 4, [(SCJGJ, "to")])
    server.handler.temporary_failures = 2
    outbox = smtp_outbox(store, mail_settings(server.port, tmp_path))

    assert outbox.deliver_due(T0).retrying == 1
    row = rows(store)[SCJGJ]
    assert row.last_error == "451 4.3.0 mailbox temporarily unavailable, try again later"
    assert (row.state, row.permanent, row.next_attempt_at) == (
        "pending",
        False,
        T0 + timedelta(minutes=1),
    )
    assert outbox.deliver_due(T0 + timedelta(minutes=1)).retrying == 1
    assert rows(store)[SCJGJ].next_attempt_at == T0 + timedelta(minutes=3)
    assert outbox.deliver_due(T0 + timedelta(minutes=2)).sent == 0
    assert outbox.deliver_due(T0 + timedelta(minutes=3)).sent == 1
    assert len(server.handler.messages()) == 1
    assert rows(store)[SCJGJ].attempts == 3


def test_the_backoff_is_exponential_and_capped() -> None:
    settings = MailSettings(retry_base=timedelta(minutes=1), retry_cap=timedelta(minutes=10))
    waits = [settings.backoff(attempt) for attempt in range(1, 7)]
    assert [w.total_seconds() / 60 for w in waits] == [1, 2, 4, 8, 10, 10]
    assert settings.backoff(500) == timedelta(minutes=10)


def test_transient_failures_are_given_up_after_the_last_allowed_attempt(
    server: SmtpServer, tmp_path: Path, store: Engine
) -> None:
    add_notice(store, 5, [(SCJGJ, "to")])
    server.handler.temporary_failures = 10
    outbox = smtp_outbox(store, mail_settings(server.port, tmp_path, max_attempts=2))
    assert outbox.deliver_due(T0).retrying == 1
    assert outbox.deliver_due(T0 + timedelta(hours=1)).failed == 1
    row = rows(store)[SCJGJ]
    assert (row.state, row.permanent, row.attempts) == ("failed", False, 2)
    assert row.last_error == (
        "gave up after 2 attempts: 451 4.3.0 mailbox temporarily unavailable, try again later"
    )


def test_an_unreachable_server_never_uses_up_the_attempts(store: Engine, tmp_path: Path) -> None:
    add_notice(store, 12, [(SCJGJ, "to")])
    SmtpServer(tmp_path)  # makes the certificate; never started
    outbox = smtp_outbox(store, mail_settings(free_port(), tmp_path, max_attempts=2))
    for hours in range(3):
        assert outbox.deliver_due(T0 + timedelta(hours=hours)).retrying == 1
    row = rows(store)[SCJGJ]
    assert (row.state, row.attempts, row.permanent) == ("pending", 3, False)
    assert row.next_attempt_at == T0 + timedelta(hours=2, minutes=4)


def test_an_invalid_address_fails_permanently_without_asking_the_server(
    store: Engine, server: SmtpServer, tmp_path: Path
) -> None:
    add_notice(store, 6, [("scjgj at dongyang", "to"), (OFFICE, "cc")])
    report = smtp_outbox(store, mail_settings(server.port, tmp_path)).deliver_due(T0)
    assert (report.sent, report.failed) == (1, 1)
    bad = rows(store)["scjgj at dongyang"]
    assert (bad.state, bad.permanent) == ("failed", True)
    assert bad.last_error == "invalid address: 'scjgj at dongyang'"
    assert [r.recipients for r in server.handler.messages()] == [[OFFICE]]


def test_a_refused_login_is_retried_later_not_failed_for_good(
    store: Engine, server: SmtpServer, tmp_path: Path
) -> None:
    add_notice(store, 8)
    settings = mail_settings(server.port, tmp_path)
    wrong = MailSettings(
        sender="smtp",
        from_address=FROM,
        smtp=SmtpSettings(**{**settings.smtp.__dict__, "password": "wrong"}),
    )
    report = smtp_outbox(store, wrong).deliver_due(T0)
    assert (report.retrying, report.failed) == (1, 0)
    assert report.stopped_by is not None and "535" in report.stopped_by
    assert [r.state for r in rows(store).values()] == ["pending", "pending"]
    assert server.handler.messages() == []


# ---- claims --------------------------------------------------------------------------------


def test_a_row_is_claimed_by_one_outbox_only(store: Engine, tmp_path: Path) -> None:
    add_notice(store, 9, [(SCJGJ, "to")])
    settings = mail_settings(1, tmp_path)
    first, second = smtp_outbox(store, settings, "a:1:x"), smtp_outbox(store, settings, "b:2:y")
    delivery_id = rows(store)[SCJGJ].id
    claim = first.claim(delivery_id, T0)
    assert claim is not None and claim.attempts == 1
    assert second.claim(delivery_id, T0) is None
    row = rows(store)[SCJGJ]
    assert (row.state, row.claimed_by, row.claimed_at, row.attempts) == (
        "sending",
        "a:1:x",
        T0,
        1,
    )
    assert row.message_id == claim.message_id  # stored before anything is sent


def test_a_row_not_due_yet_is_not_claimed(store: Engine, tmp_path: Path) -> None:
    add_notice(store, 10, [(SCJGJ, "to")], issued_at=T0 + timedelta(minutes=5))
    outbox = smtp_outbox(store, mail_settings(1, tmp_path))
    assert outbox.claim(rows(store)[SCJGJ].id, T0) is None
    assert outbox.deliver_due(T0).sent == 0


# ---- the file sender -------------------------------------------------------------------------


def test_the_file_sender_writes_one_eml_per_recipient_once(store: Engine, tmp_path: Path) -> None:
    notice = add_notice(store, 11)
    folder = tmp_path / "var" / "outbox"
    settings = MailSettings(sender="file", outbox=folder, from_address=FROM)
    outbox = Outbox(store, settings, FileSender(folder), instance="test:1:a")

    assert outbox.deliver_due(T0).sent == 2
    assert outbox.deliver_due(T0 + timedelta(hours=1)).sent == 0

    files = sorted(folder.iterdir())
    assert [f.name.startswith("JC-2026-000011.") and f.suffix == ".eml" for f in files] == [
        True,
        True,
    ]
    by_recipient = {}
    for file in files:
        message = parse(file.read_bytes())
        by_recipient[message["Delivered-To"]] = message
        assert message["Subject"] == SUBJECT.format(n=11)
        assert message["X-Watchdog-Notice"] == "JC-2026-000011"
    assert sorted(by_recipient) == sorted([SCJGJ, OFFICE])
    stored = rows(store)
    assert by_recipient[SCJGJ]["Message-ID"] == stored[SCJGJ].message_id
    body = by_recipient[OFFICE].get_body(("plain",))
    assert body is not None and "已超过承诺时限 3 个工作日" in body.get_content()
    assert notice_state(store, notice) == "delivered"
