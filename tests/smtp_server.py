"""A real SMTP server for tests: aiosmtpd on a free port, STARTTLS or TLS, AUTH.

`SmtpServer` starts an aiosmtpd controller on a port found free by scanning (not port
0), with a self-signed certificate made by `openssl` for STARTTLS (or implicit TLS),
AUTH LOGIN/PLAIN against one username and password, and a handler that records each
accepted message and can be told to refuse one recipient (550), to answer 451 for a
while, or to take its time before accepting each message.
"""

from __future__ import annotations

import email
import email.policy
import random
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"
USERNAME = "xiaonengban"
PASSWORD = "密码-s3cret"


def free_port() -> int:
    """A TCP port nobody listens on now, found by trying to bind from a random start."""
    start = random.randrange(20000, 40000)
    for port in range(start, start + 2000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + 1999}")


_certificate: tuple[bytes, bytes] | None = None  # made once per test process


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost and its key (made by openssl), in folder."""
    global _certificate  # noqa: PLW0603 - a cache: key generation is the slow part
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    if _certificate is None:
        with tempfile.TemporaryDirectory() as scratch:
            made_cert, made_key = Path(scratch) / "cert.pem", Path(scratch) / "key.pem"
            subprocess.run(
                [
                    "openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-keyout", str(made_key), "-out", str(made_cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip
            _certificate = (made_cert.read_bytes(), made_key.read_bytes())
    cert.write_bytes(_certificate[0])
    key.write_bytes(_certificate[1])
    return cert, key


@dataclass
class Received:
    """One message the server accepted: envelope and parsed content."""

    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Handler:
    """Records accepted messages; refuses what it is told to refuse."""

    refuse: dict[str, str] = field(default_factory=dict)  # recipient → "550 ..." reply
    temporary_failures: int = 0  # answer 451 to this many RCPTs, then accept
    delay: float = 0.0  # seconds to think before accepting each message
    received: list[Received] = field(default_factory=list)
    in_data: threading.Event = field(default_factory=threading.Event)
    on_accept: Callable[[], None] | None = None  # called as each message is accepted
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        with self.lock:
            if self.temporary_failures > 0:
                self.temporary_failures -= 1
                return "451 4.3.0 mailbox temporarily unavailable, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        self.in_data.set()
        # A client that disconnects during this wait cancels the handler (aiosmtpd does
        # so on connection loss): the message is then not accepted, as on a real server
        # that had not answered the final dot yet.
        await asyncio.sleep(self.delay)
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
            self.in_data.clear()
        if self.on_accept is not None:
            self.on_accept()
        return "250 2.0.0 queued"

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    good = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USERNAME
        and auth_data.password.decode() == PASSWORD
    )
    return AuthResult(success=good, handled=False)


class SmtpServer:
    """An aiosmtpd server on a free port; `security` is "starttls", "tls" or "plain"."""

    def __init__(self, folder: Path, security: str = "starttls", port: int | None = None) -> None:
        self.cert, key = self_signed_certificate(folder)
        self.port = port or free_port()
        self.security = security
        self.handler = Handler()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        options: dict[str, Any] = {}
        if security == "starttls":
            options = {"tls_context": context, "require_starttls": True}
        if security != "plain":
            options.update(authenticator=_authenticate, auth_required=True)
        if security == "tls":
            # aiosmtpd only counts STARTTLS as TLS for AUTH; this connection is TLS from
            # its first byte.
            options["auth_require_tls"] = False
        self.controller = Controller(
            self.handler,
            hostname=HOST,
            port=self.port,
            ssl_context=context if security == "tls" else None,
            server_hostname="smtp.test",
            **options,
        )

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.handler.messages()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"server got {len(self.handler.messages())} message(s), expected {count}"
                )
            time.sleep(0.02)
        return self.handler.messages()
