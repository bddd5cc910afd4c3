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
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchdog.metrics.settings import MetricsSettings, read_metrics_settings
from watchdog.notices.mail_settings import MailSettings, read_mail_settings
from watchdog.notices.settings import NoticeSettings, read_notice_settings
from watchdog.store.database import SQLITE_CACHE_MIB
from watchdog.tomlreader import ConfigError, TableReader, parse_duration
from watchdog.web.settings import WebSettings, read_web_settings

__all__ = ["ConfigError", "Settings", "SourceSettings", "load_settings", "parse_duration"]

ENTITY_NAMES = ("cases", "steps", "pauses", "fees", "inspections", "reviews")
SOURCE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


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
    # Processes a full evaluation of a large source is split across (`watchdog.engine.shards`).
    evaluation_workers: int = 1
    sqlite_cache_mib: int = SQLITE_CACHE_MIB  # page cache per store connection, SQLite
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    notices: NoticeSettings = field(default_factory=NoticeSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    web: WebSettings = field(default_factory=WebSettings)

    def source(self, name: str) -> SourceSettings:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)


def default_workers() -> int:
    """One evaluation process per core this process may use, at most four: beyond that
    the store's single writer (SQLite) or its disk is the limit, not the rules."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


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
    root = TableReader(file, "", data, problems)
    base = path.parent

    store = root.table("store")
    store_url = _relative_sqlite_url(store.string("url", "sqlite:///var/watchdog.db"), base)
    sqlite_cache_mib = store.integer("sqlite_cache_mib", SQLITE_CACHE_MIB, minimum=1)
    store.reject_unknown_keys()

    calendar = root.table("calendar")
    overrides = calendar.string("overrides")
    calendar_overrides = (base / overrides) if overrides else None
    calendar.reject_unknown_keys()

    daemon = root.table("daemon")
    log_level = daemon.string("log_level", "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        daemon.problem("log_level", f"expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    evaluation_workers = daemon.integer("evaluation_workers", default_workers(), minimum=1)
    daemon.reject_unknown_keys()

    rules = root.table("rules")
    rules_dir = base / (rules.string("dir", "rules") or "rules")
    rules.reject_unknown_keys()
    metrics = read_metrics_settings(root)
    notices = read_notice_settings(root, base)
    mail = read_mail_settings(root, base)
    web = read_web_settings(root)
    sources = _read_sources(root, base)
    root.reject_unknown_keys()
    if problems:
        raise ConfigError(problems)
    return Settings(
        path=path,
        store_url=store_url,
        sqlite_cache_mib=sqlite_cache_mib,
        sources=sources,
        calendar_overrides=calendar_overrides,
        rules_dir=rules_dir,
        log_level=log_level,
        evaluation_workers=evaluation_workers,
        metrics=metrics,
        notices=notices,
        mail=mail,
        web=web,
    )


def _read_sources(root: TableReader, base: Path) -> tuple[SourceSettings, ...]:
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
        reader = TableReader(root.file, f"sources[{index}]", raw, root.problems)
        if not isinstance(raw, dict):
            root.problem(f"sources[{index}]", f"expected a table, got {raw!r}")
            continue
        source = _read_source(reader, index, base)
        if source.name in names:
            reader.problem("name", f'duplicate source name "{source.name}"')
        names.add(source.name)
        sources.append(source)
    return tuple(sources)


def _read_source(reader: TableReader, index: int, base: Path) -> SourceSettings:
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


def _read_queries(table: TableReader) -> Mapping[str, str]:
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
