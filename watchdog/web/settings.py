"""The `[web]` section of config.toml: the auditors' API and console.

Tokens are configured by their SHA-256 hash only, so config.toml (often in a backup or
a repository) never holds a usable secret:

    python -c "import hashlib;print(hashlib.sha256(b'the token').hexdigest())"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from watchdog.tomlreader import TableReader

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8470
ROLES = ("auditor", "supervisor")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TOKEN_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")


@dataclass(frozen=True)
class TokenSettings:
    """One bearer token: who holds it (recorded as the actor of what it does) and its role."""

    name: str
    role: str
    sha256: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if not _SHA256.match(self.sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, got {self.sha256!r}")


@dataclass(frozen=True)
class WebSettings:
    """Whether and where the API and console are served, who may use them, and limits."""

    enabled: bool = False
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT  # 0 picks a free port
    tokens: tuple[TokenSettings, ...] = ()
    rate_per_minute: int = 120  # requests a token may make per minute, on average ...
    rate_burst: int = 30  # ... and at once
    max_body_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port!r}")
        for name, value in (
            ("rate_per_minute", self.rate_per_minute),
            ("rate_burst", self.rate_burst),
            ("max_body_bytes", self.max_body_bytes),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")


def read_web_settings(root: TableReader) -> WebSettings:
    """Read `[web]`; problems are recorded on the reader, defaults returned for them."""
    table = root.table("web")
    enabled = table.boolean("enabled", False)
    address = table.ip_address("address", DEFAULT_ADDRESS)
    port = table.port("port", DEFAULT_PORT)
    tokens = _read_tokens(table)
    if enabled and not tokens:
        table.problem("tokens", "at least one token is required when enabled = true")
    settings = WebSettings(
        enabled=enabled,
        address=address,
        port=port,
        tokens=tokens,
        rate_per_minute=table.integer("rate_per_minute", 120, minimum=1),
        rate_burst=table.integer("rate_burst", 30, minimum=1),
        max_body_bytes=table.integer("max_body_bytes", 64 * 1024, minimum=1),
    )
    table.reject_unknown_keys()
    return settings


def _read_tokens(table: TableReader) -> tuple[TokenSettings, ...]:
    raw = table.raw("tokens")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        table.problem("tokens", f"expected an array of tables [[web.tokens]], got {raw!r}")
        return ()
    tokens: list[TokenSettings] = []
    names: set[str] = set()
    hashes: set[str] = set()
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            table.problem(f"tokens[{index}]", f"expected a table, got {entry!r}")
            continue
        reader = TableReader(table.file, table.key(f"tokens[{index}]"), entry, table.problems)
        name = reader.string("name", required=True)
        role = reader.string("role", required=True)
        digest = reader.string("sha256", required=True).lower()
        reader.reject_unknown_keys()
        problems = len(table.problems)
        if name and not _TOKEN_NAME.match(name):
            reader.problem("name", f"expected 1-64 printable characters, got {name!r}")
        if name in names:
            reader.problem("name", f"duplicate token name {name!r}")
        if role and role not in ROLES:
            reader.problem("role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        if digest and not _SHA256.match(digest):
            reader.problem(
                "sha256", f"expected the token's SHA-256 as 64 hex digits, got {digest!r}"
            )
        if digest in hashes:
            reader.problem("sha256", "the same token hash is configured twice")
        if len(table.problems) > problems or not (name and role and digest):
            continue
        names.add(name)
        hashes.add(digest)
        tokens.append(TokenSettings(name=name, role=role, sha256=digest))
    return tuple(tokens)
