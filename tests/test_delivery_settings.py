"""The [mail] section and the operator's view of the outbox (`watchdog outbox`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.test_delivery import FROM, OFFICE, SCJGJ, T0, add_notice
from watchdog.cli import main
from watchdog.config import ConfigError, load_settings
from watchdog.notices.delivery import Outbox
from watchdog.notices.senders import FileSender
from watchdog.store.database import create_store_engine, upgrade_store

BASE = """
[store]
url = "sqlite:///store.db"

[[sources]]
name = "county"
url = "sqlite:///source.db"
[sources.queries]
cases = "SELECT 1"
"""


def config(tmp_path: Path, mail: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(BASE + mail, encoding="utf-8")
    return path


def test_without_a_mail_section_notices_go_to_the_outbox_folder_beside_the_config(
    tmp_path: Path,
) -> None:
    mail = load_settings(config(tmp_path, "")).mail
    assert (mail.sender, mail.outbox) == ("file", tmp_path / "var" / "outbox")
    assert (mail.interval, mail.batch_size, mail.max_attempts) == (timedelta(seconds=30), 50, 10)


def test_an_smtp_section_is_read_with_its_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    (tmp_path / "ca.pem").write_text("-", encoding="utf-8")
    mail = load_settings(
        config(
            tmp_path,
            f"""
[mail]
sender = "smtp"
from_address = "{FROM}"
interval = "10s"
retry_base = "30s"
retry_cap = "2h"
max_attempts = 5
[mail.smtp]
host = "smtp.dongyang.example.gov.cn"
security = "tls"
username = "xiaonengban"
password = "${{SMTP_PASSWORD}}"
timeout = "20s"
ca_file = "ca.pem"
""",
        )
    ).mail
    assert mail.sender == "smtp"
    assert mail.from_addr_spec == OFFICE
    assert (mail.interval, mail.retry_base, mail.retry_cap, mail.max_attempts) == (
        timedelta(seconds=10),
        timedelta(seconds=30),
        timedelta(hours=2),
        5,
    )
    smtp = mail.smtp
    assert (smtp.host, smtp.port, smtp.security) == ("smtp.dongyang.example.gov.cn", 465, "tls")
    assert (smtp.username, smtp.password, smtp.timeout) == (
        "xiaonengban",
        "s3cret",
        timedelta(seconds=20),
    )
    assert smtp.ca_file == tmp_path / "ca.pem"


def test_every_mail_problem_is_named_with_its_key_and_value(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        """
[mail]
sender = "pigeon"
from_address = "效能办"
retry_base = "10m"
retry_cap = "1m"
batch_size = 0
colour = "red"
[mail.smtp]
security = "ssl"
password = "x"
""",
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert raised.value.problems == [
        'config.toml: mail.sender: expected "file" or "smtp", got \'pigeon\'',
        "config.toml: mail.from_address: expected an address like "
        "\"效能办 <xiaonengban@example.gov.cn>\", got '效能办'",
        "config.toml: mail.retry_cap: must not be below retry_base (0:10:00), got 0:01:00",
        "config.toml: mail.batch_size: must be at least 1, got 0",
        'config.toml: mail.smtp.security: expected "plain", "starttls" or "tls", got \'ssl\'',
        "config.toml: mail.smtp.username: is required when a password is given",
        "config.toml: mail.colour: unknown key",
    ]


def test_an_smtp_sender_needs_a_host(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(config(tmp_path, '[mail]\nsender = "smtp"\n'))
    assert raised.value.problems == ["config.toml: mail.smtp.host: is required"]


def test_the_outbox_command_shows_failures_with_the_answer_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "")
    settings = load_settings(path)
    store = create_store_engine(settings.store_url)
    upgrade_store(store)
    add_notice(store, 1, [(SCJGJ, "to"), ("scjgj at dongyang", "cc")])
    add_notice(store, 2, [(OFFICE, "to")], issued_at=T0 + timedelta(days=1))
    Outbox(store, settings.mail, FileSender(settings.mail.outbox)).deliver_due(T0)
    store.dispose()

    assert main(["outbox", "--failed", "--config", str(path)]) == 0
    failed = capsys.readouterr().out.splitlines()
    assert failed[0].split() == [
        "id", "notice", "recipient", "role", "state", "attempts", "when", "(UTC)", "last", "error",
    ]  # fmt: skip
    assert failed[2].split()[0:2] == ["2", "JC-2026-000001"]
    assert "failed (permanent)" in failed[2]
    assert failed[2].endswith("invalid address: 'scjgj at dongyang'")
    assert len(failed) == 5  # header, rule, one row, blank, summary
    assert failed[-1] == "deliveries: 1 pending, 0 sending, 1 sent, 1 failed"

    assert main(["outbox", "--config", str(path), "--limit", "2"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed[2:4]] == ["3", "2"]  # newest first
    assert "next 2026-06-02 02:00:00" in listed[2]
