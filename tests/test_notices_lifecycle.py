"""The rectification lifecycle through its functions and the `watchdog notices` CLI:
legal transitions with who and when, illegal ones refused naming notice and state."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from tests.test_notices_escalation import SETTINGS, issue_yellow
from tests.test_notices_numbering import make_issuer
from watchdog.cli import main
from watchdog.notices.lifecycle import (
    NoticeNotFound,
    NoticeStateError,
    acknowledge,
    close,
    mark_delivered,
    rectify,
    reopen,
)
from watchdog.store import schema

SHANGHAI = ZoneInfo("Asia/Shanghai")
NUMBER = "JC-2026-000001"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def state_and_events(store: Engine) -> tuple[str, list[tuple[str, str | None, str, str]]]:
    n, e = schema.notices, schema.notice_events
    with store.connect() as connection:
        state = connection.execute(select(n.c.state).where(n.c.number == NUMBER)).scalar_one()
        events = connection.execute(
            select(e.c.event, e.c.state_from, e.c.state_to, e.c.actor).order_by(e.c.id)
        ).all()
    return state, [(r.event, r.state_from, r.state_to, r.actor) for r in events]


def test_a_notice_goes_from_issued_to_closed_and_back_with_every_step_recorded(
    store: Engine,
) -> None:
    issue_yellow(store, make_issuer(SETTINGS), "C1", "SCJGJ")
    n = schema.notices
    with store.begin() as connection:
        notice_id = connection.execute(select(n.c.id)).scalar_one()
        assert mark_delivered(connection, notice_id, local("2026-09-16T10:05:00")) is True
        assert mark_delivered(connection, notice_id, local("2026-09-16T10:06:00")) is False
        assert acknowledge(connection, NUMBER, by="张三", at=local("2026-09-17T09:00:00")) == (
            "delivered"
        )
        rectify(connection, NUMBER, reply="已办结", by="张三", at=local("2026-09-18T09:00:00"))
        close(connection, NUMBER, by="李四", at=local("2026-09-21T09:00:00"))
        reopen(connection, NUMBER, by="李四", at=local("2026-09-22T09:00:00"), reason="整改不实")
        row = connection.execute(select(n)).one()
    assert (row.reply, row.updated_at) == ("已办结", local("2026-09-22T09:00:00"))
    state, events = state_and_events(store)
    assert state == "acknowledged"
    assert events == [
        ("issued", None, "issued", "watchdog"),
        ("delivered", "issued", "delivered", "watchdog"),
        ("acknowledged", "delivered", "acknowledged", "张三"),
        ("rectified", "acknowledged", "rectified", "张三"),
        ("closed", "rectified", "closed", "李四"),
        ("reopened", "closed", "acknowledged", "李四"),
    ]
    e = schema.notice_events
    with store.connect() as connection:
        details = connection.execute(select(e.c.detail).order_by(e.c.id)).scalars().all()
    assert details[3:] == ["已办结", None, "整改不实"]


def test_an_illegal_transition_is_refused_naming_the_notice_and_its_state(store: Engine) -> None:
    issue_yellow(store, make_issuer(SETTINGS), "C1", "SCJGJ")
    at = local("2026-09-17T09:00:00")
    with store.begin() as connection:
        with pytest.raises(NoticeStateError) as error:
            close(connection, NUMBER, by="李四", at=at)
        assert str(error.value) == (
            f"notice {NUMBER} is issued: cannot close it (only from rectified)"
        )
        with pytest.raises(NoticeStateError) as error:
            rectify(connection, NUMBER, reply="已办结", by="张三", at=at)
        assert str(error.value) == (
            f"notice {NUMBER} is issued: cannot rectify it (only from acknowledged, escalated)"
        )
        with pytest.raises(NoticeStateError) as error:
            reopen(connection, NUMBER, by="李四", at=at)
        assert "is issued: cannot reopen it (only from rectified, closed)" in str(error.value)
        with pytest.raises(NoticeNotFound):
            acknowledge(connection, "JC-2026-999999", by="张三", at=at)
    state, events = state_and_events(store)
    assert (state, len(events)) == ("issued", 1)  # nothing was recorded


def write_config(tmp_path: Path, store_url: str, notices: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[store]
url = "{store_url}"
[rules]
dir = "{Path(__file__).resolve().parent.parent / "rules"}"
[[sources]]
name = "county"
url = "sqlite:///{tmp_path / "absent.db"}"
[sources.queries]
cases = "SELECT 1"
{notices}
""",
        encoding="utf-8",
    )
    return path


def test_the_cli_lists_shows_and_moves_notices_and_refuses_illegal_moves_with_exit_2(
    store: Engine, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer = make_issuer(SETTINGS)
    issue_yellow(store, issuer, "C1", "SCJGJ")
    issue_yellow(store, issuer, "C2", "ZJJ")
    config = str(write_config(tmp_path, store_url))

    assert main(["notices", "list", "--config", config, "--dept", "SCJGJ"]) == 0
    out = capsys.readouterr().out
    assert NUMBER in out and "JC-2026-000002" not in out and "2026-09-30" in out

    assert main(["notices", "ack", NUMBER, "--by", "张三", "--config", config]) == 0
    assert capsys.readouterr().out == f"notice {NUMBER}: issued -> acknowledged (by 张三)\n"
    assert main(["notices", "--config", config, "close", NUMBER, "--by", "李四"]) == 2
    assert capsys.readouterr().err == (
        f"error: notice {NUMBER} is acknowledged: cannot close it (only from rectified)\n"
    )
    argv = ["notices", "rectify", NUMBER, "--reply", "已于9月20日办结", "--by", "张三"]
    assert main([*argv, "--config", config]) == 0
    assert main(["notices", "close", NUMBER, "--by", "李四", "--config", config]) == 0
    argv = ["notices", "reopen", NUMBER, "--by", "李四", "--reason", "复核发现未整改到位"]
    assert main([*argv, "--config", config]) == 0
    capsys.readouterr()

    assert main(["notices", "list", "--config", config, "--state", "acknowledged"]) == 0
    listed = capsys.readouterr().out
    assert NUMBER in listed and "JC-2026-000002" not in listed
    assert main(["notices", "list", "--config", config, "--since", "2026-09-17"]) == 0
    assert NUMBER not in capsys.readouterr().out  # issued on 9/16

    assert main(["notices", "show", NUMBER, "--config", config]) == 0
    shown = capsys.readouterr().out
    assert f"notice {NUMBER} (rectification), state acknowledged" in shown
    assert "reply: 已于9月20日办结" in shown
    assert "请于 2026-09-30（含当日）前完成整改" in shown  # the stored text body
    assert "rectified    acknowledged -> rectified  by 张三: 已于9月20日办结" in shown
    assert "reopened     closed -> acknowledged  by 李四: 复核发现未整改到位" in shown
    assert "scj@example.gov.cn" in shown and "jianchake@example.gov.cn" in shown
    assert "pending" in shown

    assert main(["notices", "show", "JC-2026-999999", "--config", config]) == 2
    assert capsys.readouterr().err == "error: notice JC-2026-999999 not found\n"


def test_a_template_naming_a_missing_variable_stops_the_daemon_at_start(
    store: Engine, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "body.txt.j2").write_text(
        "{{ notice.number }} {{ notice.deadline_date }}", encoding="utf-8"
    )
    notices = """
[notices]
enabled = true
templates = "templates"
supervision_office = ["jianchake@example.gov.cn"]
"""
    config = str(write_config(tmp_path, store_url, notices))
    assert main(["run", "--once", "--config", config]) == 2
    err = capsys.readouterr().err
    assert f"config error: {tmp_path / 'templates' / 'body.txt.j2'}: notices.templates: " in err
    assert "has no attribute 'deadline_date'" in err


def test_notice_settings_problems_are_reported_with_key_and_value(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notices = """
[notices]
enabled = true
policy = "weekly"
digest_at = "5pm"
severities = ["yellow", "orange"]
deadline_working_days = { red = 0 }
[notices.contacts]
SCJGJ = ["not-an-address"]
"""
    config = str(write_config(tmp_path, store_url, notices))
    assert main(["notices", "list", "--config", config]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "config error: config.toml: notices.policy: "
        'expected "immediate" or "daily_digest", got \'weekly\'',
        "config error: config.toml: notices.digest_at: "
        "expected a local time like \"17:30\", got '5pm'",
        "config error: config.toml: notices.severities: "
        "expected warning, yellow or red, got ['orange']",
        "config error: config.toml: notices.deadline_working_days.red: must be at least 1, got 0",
        "config error: config.toml: notices.supervision_office: at least one address is "
        "required when notices are enabled (it gets a copy of every notice and the notices "
        "of departments without contacts)",
        "config error: config.toml: notices.contacts.SCJGJ: "
        "not an e-mail address: 'not-an-address'",
    ]
