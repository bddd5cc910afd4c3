"""config.toml → validated, frozen settings.

Every problem is reported with the file, the key path and the value that was found
(`config.toml: sources[0].poll_interval: expected a duration like "60s", got "soon"`),
and all problems of a file are reported together so an operator fixes them in one pass.
Secrets stay out of the file: any string may reference an environment variable as
`${NAME}`, which is substituted on load.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENTITY_NAMES = ("cases", "steps", "pauses", "fees", "inspections", "reviews")
SOURCE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """One or more problems in a configuration file, each naming file, key and value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class SourceSettings:
    """One case database to poll, with one SQL query per canonical entity."""

    name: str
    url: str
    timezone: ZoneInfo
    poll_interval: timedelta
    overlap: timedelta
    batch_size: int
    queries: Mapping[str, str]
    index: int  # position in the file, so errors can say sources[N]


@dataclass(frozen=True)
class Settings:
    """Everything the daemon and the CLI read from config.toml."""

    path: Path
    store_url: str
    sources: tuple[SourceSettings, ...]
    calendar_overrides: Path | None
    rules_dir: Path
    log_level: str

    def source(self, name: str) -> SourceSettings:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)


def parse_duration(text: str) -> timedelta:
    """Parse "500ms", "60s", "5m", "2h" or "1d"; raise ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


class _Reader:
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

    def table(self, name: str) -> _Reader:
        value = self.raw(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(name, f"expected a table, got {value!r}")
            value = {}
        return _Reader(self.file, self.key(name), value, self.problems)

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


def load_settings(path: Path) -> Settings:
    """Read and validate a config file; raise ConfigError listing every problem."""
    file = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file}: invalid TOML: {exc}"]) from None
    problems: list[str] = []
    root = _Reader(file, "", data, problems)
    base = path.parent

    store = root.table("store")
    store_url = _relative_sqlite_url(store.string("url", "sqlite:///var/watchdog.db"), base)
    store.reject_unknown_keys()

    calendar = root.table("calendar")
    overrides = calendar.string("overrides")
    calendar_overrides = (base / overrides) if overrides else None
    calendar.reject_unknown_keys()

    daemon = root.table("daemon")
    log_level = daemon.string("log_level", "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        daemon.problem("log_level", f"expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    daemon.reject_unknown_keys()

    rules = root.table("rules")
    rules_dir = base / (rules.string("dir", "rules") or "rules")
    rules.reject_unknown_keys()
    sources = _read_sources(root, base)
    root.reject_unknown_keys()
    if problems:
        raise ConfigError(problems)
    return Settings(
        path=path,
        store_url=store_url,
        sources=sources,
        calendar_overrides=calendar_overrides,
        rules_dir=rules_dir,
        log_level=log_level,
    )


def _read_sources(root: _Reader, base: Path) -> tuple[SourceSettings, ...]:
    raw_sources = root.raw("sources")
    if raw_sources is None:
        root.problem("sources", "at least one [[sources]] entry is required")
        return ()
    if not isinstance(raw_sources, list):
        root.problem("sources", f"expected an array of tables [[sources]], got {raw_sources!r}")
        return ()
    sources: list[SourceSettings] = []
    names: set[str] = set()
    for index, raw in enumerate(raw_sources):
        reader = _Reader(root.file, f"sources[{index}]", raw, root.problems)
        if not isinstance(raw, dict):
            root.problem(f"sources[{index}]", f"expected a table, got {raw!r}")
            continue
        source = _read_source(reader, index, base)
        if source.name in names:
            reader.problem("name", f'duplicate source name "{source.name}"')
        names.add(source.name)
        sources.append(source)
    return tuple(sources)


def _read_source(reader: _Reader, index: int, base: Path) -> SourceSettings:
    name = reader.string("name", required=True)
    if name and not SOURCE_NAME_PATTERN.match(name):
        reader.problem("name", f"expected lower-case letters, digits, '-' or '_', got {name!r}")
    url = _relative_sqlite_url(reader.string("url", required=True), base)
    zone_name = reader.string("timezone", "Asia/Shanghai")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        reader.problem("timezone", f'unknown time zone "{zone_name}"')
        zone = ZoneInfo("Asia/Shanghai")
    poll_interval = reader.duration("poll_interval", "60s")
    if poll_interval < timedelta(seconds=1):
        reader.problem("poll_interval", f"must be at least 1s, got {poll_interval}")
    source = SourceSettings(
        name=name,
        url=url,
        timezone=zone,
        poll_interval=poll_interval,
        overlap=reader.duration("overlap", "5m"),
        batch_size=reader.integer("batch_size", 20_000, minimum=1),
        queries=_read_queries(reader.table("queries")),
        index=index,
    )
    reader.reject_unknown_keys()
    return source


def _read_queries(table: _Reader) -> Mapping[str, str]:
    queries: dict[str, str] = {}
    for entity in ENTITY_NAMES:
        query = table.string(entity)
        if table.data.get(entity) is not None and not query.strip():
            table.problem(entity, "query is empty")
        elif query:
            queries[entity] = query.strip().rstrip(";")
    if "cases" not in queries and "cases" not in table.data:
        table.problem("cases", "is required (the query that returns the cases)")
    table.reject_unknown_keys()
    return MappingProxyType(queries)


def _relative_sqlite_url(url: str, base: Path) -> str:
    """Resolve a relative SQLite path against the config file's folder, not the cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        path, _, query = rest.partition("?")
        if path and path != ":memory:":
            resolved = prefix + str((base / path).resolve())
            return resolved + (f"?{query}" if query else "")
    return url
