"""Reading one TOML table into typed values, recording problems instead of raising.

Shared by `watchdog.config` and the settings of each feature (notices, mail, metrics),
so every configuration problem is reported the same way: file, key path and value
(`config.toml: sources[0].poll_interval: expected a duration like "60s", got "soon"`).
Any string may reference an environment variable as `${NAME}`, substituted on read.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """One or more problems in a configuration file, each naming file, key and value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def parse_duration(text: str) -> timedelta:
    """Parse "500ms", "60s", "5m", "2h" or "1d"; raise ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


class TableReader:
    """Reads typed values out of one TOML table and records problems instead of raising."""

    def __init__(self, file: str, path: str, data: Mapping[str, Any], problems: list[str]):
        self.file = file
        self.path = path
        self.data = data
        self.problems = problems
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{self.file}: {self.key(name)}: {message}")

    def raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            if required:
                self.problem(name, "is required")
            return default or ""
        if not isinstance(value, str):
            self.problem(name, f"expected a string, got {value!r}")
            return default or ""
        return self._substitute_environment(name, value)

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(name, f"expected an integer, got {value!r}")
            return default
        if value < minimum:
            self.problem(name, f"must be at least {minimum}, got {value}")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(name, f"expected true or false, got {value!r}")
            return default
        return value

    def ip_address(self, name: str, default: str) -> str:
        """An address to listen on, as text ("127.0.0.1", "0.0.0.0", "::1")."""
        address = self.string(name, default)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            self.problem(name, f'expected an IP address like "127.0.0.1", got "{address}"')
            return default
        return address

    def port(self, name: str, default: int) -> int:
        port = self.integer(name, default)
        if port > 65535:
            self.problem(name, f"must be at most 65535, got {port}")
            return default
        return port

    def duration(self, name: str, default: str) -> timedelta:
        value = self.raw(name)
        text = default if value is None else value
        if not isinstance(text, str):
            self.problem(name, f'expected a duration like "60s", got {value!r}')
            return parse_duration(default)
        try:
            return parse_duration(text)
        except ValueError:
            self.problem(name, f'expected a duration like "60s", got "{text}"')
            return parse_duration(default)

    def table(self, name: str) -> TableReader:
        value = self.raw(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(name, f"expected a table, got {value!r}")
            value = {}
        return TableReader(self.file, self.key(name), value, self.problems)

    def reject_unknown_keys(self) -> None:
        for name in sorted(set(self.data) - self.seen):
            self.problem(name, "unknown key")

    def _substitute_environment(self, name: str, value: str) -> str:
        def lookup(match: re.Match[str]) -> str:
            variable = match.group(1)
            if variable not in os.environ:
                self.problem(name, f"environment variable {variable} is not set")
                return ""
            return os.environ[variable]

        return _ENV_REFERENCE.sub(lookup, value)
