"""The API and console served for real: uvicorn on a port, fetched with httpx; the
daemon's service around it; the `[web]` section of config.toml."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.test_history import fill_history, write_config
from tests.test_web import AUDITOR, sha256, web_settings
from watchdog.config import ConfigError, load_settings
from watchdog.web.server import WebServer, WebService
from watchdog.web.settings import TokenSettings, WebSettings


def test_the_server_serves_the_api_and_console_on_a_real_port(
    store: Engine, tmp_path: Path
) -> None:
    fill_history(store, tmp_path / "outbox")
    server = WebServer(store, web_settings(port=0))
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/api/v1/violations").status_code == 401
            page = client.get("/api/v1/violations", headers={"Authorization": f"Bearer {AUDITOR}"})
            assert page.status_code == 200 and page.json()["total"] == 5
            assert "server" not in page.headers
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["x-frame-options"] == "DENY"
            assert "default-src 'none'" in page.headers["content-security-policy"]
            login = client.get("/console/login")
            assert login.status_code == 200 and "访问令牌" in login.text
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/console/login", timeout=2)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_service_does_nothing_when_disabled_and_survives_a_taken_port(
    store: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    disabled = WebService(store, WebSettings())
    disabled.start()
    assert disabled.server is None
    disabled.stop()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = WebService(store, web_settings(port=port))
        with caplog.at_level(logging.ERROR, "watchdog.web.server"):
            service.start()
    assert service.server is None
    assert f"web: cannot listen on 127.0.0.1:{port} ([web] address/port)" in caplog.text
    service.stop()


WEB = f"""
[web]
enabled = true
address = "127.0.0.1"
port = 8471
rate_per_minute = 30
rate_burst = 5
max_body_bytes = 1024

[[web.tokens]]
name = "审计处"
role = "auditor"
sha256 = "{sha256("a").upper()}"

[[web.tokens]]
name = "监察科"
role = "supervisor"
sha256 = "{sha256("s")}"
"""


def test_the_web_section_is_read_into_frozen_settings(tmp_path: Path) -> None:
    path = write_config(tmp_path, "sqlite:///store.db")
    path.write_text(path.read_text(encoding="utf-8") + WEB, encoding="utf-8")
    web = load_settings(path).web
    assert web == WebSettings(
        enabled=True,
        address="127.0.0.1",
        port=8471,
        tokens=(
            TokenSettings("审计处", "auditor", sha256("a")),
            TokenSettings("监察科", "supervisor", sha256("s")),
        ),
        rate_per_minute=30,
        rate_burst=5,
        max_body_bytes=1024,
    )
    assert load_settings(write_config(tmp_path, "sqlite:///store.db")).web == WebSettings()


def test_every_problem_of_the_web_section_is_reported_with_key_and_value(tmp_path: Path) -> None:
    path = write_config(tmp_path, "sqlite:///store.db")
    path.write_text(
        path.read_text(encoding="utf-8")
        + """
[web]
enabled = "yes"
address = "localhost"
port = 70000
rate_burst = 0
colour = "blue"

[[web.tokens]]
name = "a"
role = "admin"
sha256 = "abc"

[[web.tokens]]
name = "a"
role = "auditor"
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == [
        "config.toml: web.enabled: expected true or false, got 'yes'",
        'config.toml: web.address: expected an IP address like "127.0.0.1", got "localhost"',
        "config.toml: web.port: must be at most 65535, got 70000",
        "config.toml: web.tokens[0].role: expected one of auditor, supervisor, got 'admin'",
        "config.toml: web.tokens[0].sha256: expected the token's SHA-256 as 64 hex digits, "
        "got 'abc'",
        "config.toml: web.tokens[1].sha256: is required",
        "config.toml: web.rate_burst: must be at least 1, got 0",
        "config.toml: web.colour: unknown key",
    ]


def test_enabled_without_tokens_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "sqlite:///store.db")
    path.write_text(path.read_text(encoding="utf-8") + "[web]\nenabled = true\n", "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == [
        "config.toml: web.tokens: at least one token is required when enabled = true"
    ]
