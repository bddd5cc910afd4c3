"""The `[mail]` section of config.toml → frozen, validated delivery settings.

[mail]
sender = "file"                  # "file" (writes .eml files) or "smtp"
outbox = "var/outbox"            # the file sender's folder, relative to the config
from_address = "效能办 <xiaonengban@example.gov.cn>"
interval = "30s"                 # how often the daemon delivers due messages
batch_size = 50                  # messages per delivery run at most
retry_base = "1m"                # first retry after a transient failure, then doubling
retry_cap = "1h"                 # ... up to this
max_attempts = 10                # then the delivery is given up (state failed)
[mail.smtp]
host = "smtp.example.gov.cn"
port = 587                       # default by security: plain 25, starttls 587, tls 465
security = "starttls"            # "plain", "starttls" or "tls" (implicit TLS)
username = "xiaonengban"
password = "${SMTP_PASSWORD}"
timeout = "30s"                  # per connection step (connect, each command)
ca_file = "certs/ca.pem"         # optional: trust this CA instead of the system's
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path

from watchdog.tomlreader import TableReader

SENDERS = ("file", "smtp")
SECURITY_PORTS = {"plain": 25, "starttls": 587, "tls": 465}
DEFAULT_FROM = "watchdog@localhost"


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the mail server."""

    host: str = "localhost"
    port: int = 587
    security: str = "starttls"  # plain | starttls | tls
    username: str = ""
    password: str = ""
    timeout: timedelta = timedelta(seconds=30)
    ca_file: Path | None = None


@dataclass(frozen=True)
class MailSettings:
    """How notices leave the outbox: the sender, its retry policy and its pace."""

    sender: str = "file"
    outbox: Path = Path("var/outbox")
    from_address: str = DEFAULT_FROM
    interval: timedelta = timedelta(seconds=30)
    batch_size: int = 50
    retry_base: timedelta = timedelta(minutes=1)
    retry_cap: timedelta = timedelta(hours=1)
    max_attempts: int = 10
    smtp: SmtpSettings = field(default_factory=SmtpSettings)

    @property
    def from_addr_spec(self) -> str:
        """The bare address of `from_address` (the SMTP envelope sender)."""
        return parseaddr(self.from_address)[1]

    @property
    def lease(self) -> timedelta:
        """How long a claim by another daemon is trusted to be in flight.

        One SMTP transaction is up to about eight timed steps (connect, EHLO, STARTTLS,
        EHLO, AUTH, MAIL, RCPT, DATA); a claim older than ten timeouts plus a minute
        belongs to a daemon that is gone.
        """
        return self.smtp.timeout * 10 + timedelta(minutes=1)

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt: base · 2^(attempts−1), capped."""
        exponent = min(max(attempts - 1, 0), 30)  # 2^30 · base is past any sane cap
        wait: timedelta = self.retry_base * (2**exponent)
        return min(wait, self.retry_cap)


def read_mail_settings(root: TableReader, base: Path) -> MailSettings:
    """Read `[mail]` from the config's root table; problems go to the root's list."""
    table = root.table("mail")
    defaults = MailSettings()
    sender = table.string("sender", defaults.sender)
    if sender not in SENDERS:
        table.problem("sender", f'expected "file" or "smtp", got {sender!r}')
    folder = table.string("outbox", str(defaults.outbox)) or str(defaults.outbox)
    outbox = (base / folder).resolve()
    from_address = table.string("from_address", defaults.from_address)
    _check_from_address(table, from_address)
    interval = table.duration("interval", "30s")
    if interval < timedelta(seconds=1):
        table.problem("interval", f"must be at least 1s, got {interval}")
    retry_base = table.duration("retry_base", "1m")
    retry_cap = table.duration("retry_cap", "1h")
    if retry_base <= timedelta(0):
        table.problem("retry_base", f"must be positive, got {retry_base}")
    if retry_cap < retry_base:
        table.problem("retry_cap", f"must not be below retry_base ({retry_base}), got {retry_cap}")
    settings = MailSettings(
        sender=sender,
        outbox=outbox,
        from_address=from_address,
        interval=interval,
        batch_size=table.integer("batch_size", defaults.batch_size, minimum=1),
        retry_base=retry_base,
        retry_cap=retry_cap,
        max_attempts=table.integer("max_attempts", defaults.max_attempts, minimum=1),
        smtp=_read_smtp(table.table("smtp"), base, required=sender == "smtp"),
    )
    table.reject_unknown_keys()
    return settings


def _check_from_address(table: TableReader, text: str) -> None:
    name, spec = parseaddr(text)
    try:
        Address(display_name=name, addr_spec=spec)
        valid = "@" in spec
    except (ValueError, IndexError):
        valid = False
    if not valid:
        table.problem(
            "from_address",
            f'expected an address like "效能办 <xiaonengban@example.gov.cn>", got {text!r}',
        )


def _read_smtp(table: TableReader, base: Path, *, required: bool) -> SmtpSettings:
    security = table.string("security", "starttls")
    if security not in SECURITY_PORTS:
        table.problem("security", f'expected "plain", "starttls" or "tls", got {security!r}')
        security = "starttls"
    host = table.string("host", "", required=required)
    port = table.integer("port", SECURITY_PORTS[security], minimum=1)
    if port > 65535:
        table.problem("port", f"must be at most 65535, got {port}")
    timeout = table.duration("timeout", "30s")
    if timeout <= timedelta(0):
        table.problem("timeout", f"must be positive, got {timeout}")
    username = table.string("username")
    password = table.string("password")
    if password and not username:
        table.problem("username", "is required when a password is given")
    if username and security == "plain":
        table.problem(
            "security",
            'must be "starttls" or "tls" when a username is given (no password in clear text)',
        )
    ca_name = table.string("ca_file")
    ca_file = base / ca_name if ca_name else None
    if ca_file is not None and not ca_file.is_file():
        table.problem("ca_file", f"file not found: {ca_file}")
    settings = SmtpSettings(
        host=host or "localhost",
        port=port,
        security=security,
        username=username,
        password=password,
        timeout=timeout,
        ca_file=ca_file,
    )
    table.reject_unknown_keys()
    return settings
