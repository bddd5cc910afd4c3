"""The `[notices]` section of config.toml → frozen, validated notice settings.

[notices]
enabled = true
policy = "immediate"              # or "daily_digest"
digest_at = "17:30"               # local time of the daily digest (policy daily_digest)
timezone = "Asia/Shanghai"        # the zone of issue dates, deadlines and digest_at
severities = ["yellow", "red"]    # which violations get a notice
number_prefix = "JC"              # JC-2026-000123
deadline_working_days = { yellow = 10, red = 5 }
templates = "notice-templates"    # optional folder; its files win over the shipped ones
supervision_office = ["xiaonengban@example.gov.cn"]   # cc of every notice
leadership = ["lingdao@example.gov.cn"]               # default escalation (督办) level
reply_instructions = "..."        # how a department replies (shown in every notice)
[notices.contacts]                # dept_code → addresses
"371331001" = ["scjgj@example.gov.cn"]
[notices.escalation]              # dept_code → next level addresses
"371331001" = ["fgld-scjg@example.gov.cn"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchdog.tomlreader import TableReader

POLICIES = ("immediate", "daily_digest")
SEVERITIES = ("warning", "yellow", "red")
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,16}$")
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# A deliberately loose check: the mail server is the judge of an address; this only
# catches the typos that would otherwise surface as a permanent delivery failure.
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
_SHANGHAI = ZoneInfo("Asia/Shanghai")

DEFAULT_REPLY_INSTRUCTIONS = (
    "请于整改期限内完成整改，并通过电子邮件回复本通知书（邮件主题请保留通知书编号），"
    "说明整改措施、整改结果及责任追究情况，附相关佐证材料。"
    "如对认定有异议，请在收到本通知书之日起 3 个工作日内书面提出并附依据。"
)


@dataclass(frozen=True)
class NoticeSettings:
    """How rectification notices are issued, addressed, numbered and escalated."""

    enabled: bool = False
    policy: str = "immediate"
    digest_at: time = time(17, 30)
    timezone: ZoneInfo = _SHANGHAI
    severities: frozenset[str] = frozenset({"yellow", "red"})
    number_prefix: str = "JC"
    deadline_working_days: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"warning": 15, "yellow": 10, "red": 5})
    )
    templates: Path | None = None
    contacts: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    supervision_office: tuple[str, ...] = ()
    leadership: tuple[str, ...] = ()
    escalation: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    reply_instructions: str = DEFAULT_REPLY_INSTRUCTIONS

    def deadline_days(self, severity: str) -> int:
        return self.deadline_working_days.get(severity, self.deadline_working_days["yellow"])

    def escalation_recipients(self, dept_code: str) -> tuple[str, ...]:
        """The next level for a department: its own entry, else the leadership list, else
        the supervision office itself (so an escalation is never addressed to nobody)."""
        return self.escalation.get(dept_code) or self.leadership or self.supervision_office


def read_notice_settings(root: TableReader, base: Path) -> NoticeSettings:
    """Read `[notices]` from the config's root table; problems go to the root's list."""
    table = root.table("notices")
    defaults = NoticeSettings()
    enabled = _boolean(table, "enabled", False)
    policy = table.string("policy", defaults.policy)
    if policy not in POLICIES:
        table.problem("policy", f'expected "immediate" or "daily_digest", got {policy!r}')
    digest_at = _clock_time(table, "digest_at", defaults.digest_at)
    zone_name = table.string("timezone", "Asia/Shanghai")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        table.problem("timezone", f'unknown time zone "{zone_name}"')
        zone = _SHANGHAI
    severities = _severities(table)
    prefix = table.string("number_prefix", defaults.number_prefix)
    if not _PREFIX.match(prefix):
        table.problem("number_prefix", f"expected 1 to 16 letters or digits, got {prefix!r}")
    deadlines = _deadlines(table.table("deadline_working_days"), defaults)
    templates_dir = table.string("templates")
    templates = (base / templates_dir) if templates_dir else None
    if templates is not None and not templates.is_dir():
        table.problem("templates", f"folder not found: {templates}")
    office = _addresses(table, "supervision_office")
    if enabled and not office:
        table.problem(
            "supervision_office",
            "at least one address is required when notices are enabled "
            "(it gets a copy of every notice and the notices of departments without contacts)",
        )
    settings = NoticeSettings(
        enabled=enabled,
        policy=policy,
        digest_at=digest_at,
        timezone=zone,
        severities=severities,
        number_prefix=prefix,
        deadline_working_days=deadlines,
        templates=templates,
        contacts=_address_table(table.table("contacts")),
        supervision_office=office,
        leadership=_addresses(table, "leadership"),
        escalation=_address_table(table.table("escalation")),
        reply_instructions=table.string("reply_instructions", DEFAULT_REPLY_INSTRUCTIONS).strip()
        or DEFAULT_REPLY_INSTRUCTIONS,
    )
    table.reject_unknown_keys()
    return settings


def _boolean(table: TableReader, name: str, default: bool) -> bool:
    value = table.raw(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        table.problem(name, f"expected true or false, got {value!r}")
        return default
    return value


def _clock_time(table: TableReader, name: str, default: time) -> time:
    text = table.string(name, default.strftime("%H:%M"))
    match = _CLOCK_TIME.match(text)
    if not match:
        table.problem(name, f'expected a local time like "17:30", got {text!r}')
        return default
    return time(int(match.group(1)), int(match.group(2)))


def _severities(table: TableReader) -> frozenset[str]:
    value = table.raw("severities")
    if value is None:
        return frozenset({"yellow", "red"})
    if not isinstance(value, list) or not value:
        table.problem("severities", f'expected a list like ["yellow", "red"], got {value!r}')
        return frozenset({"yellow", "red"})
    unknown = [item for item in value if item not in SEVERITIES]
    if unknown:
        table.problem("severities", f"expected warning, yellow or red, got {unknown!r}")
    return frozenset(item for item in value if item in SEVERITIES)


def _deadlines(table: TableReader, defaults: NoticeSettings) -> Mapping[str, int]:
    days = dict(defaults.deadline_working_days)
    for severity in SEVERITIES:
        days[severity] = table.integer(severity, days[severity], minimum=1)
    table.reject_unknown_keys()
    return MappingProxyType(days)


def _address_list(table: TableReader, name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        table.problem(name, f"expected a list of e-mail addresses, got {value!r}")
        return ()
    addresses: list[str] = []
    for item in value:
        address = item.strip()
        if not _ADDRESS.match(address):
            table.problem(name, f"not an e-mail address: {item!r}")
        elif address not in addresses:
            addresses.append(address)
    return tuple(addresses)


def _addresses(table: TableReader, name: str) -> tuple[str, ...]:
    value = table.raw(name)
    return () if value is None else _address_list(table, name, value)


def _address_table(table: TableReader) -> Mapping[str, tuple[str, ...]]:
    """dept_code → addresses; every key is a department, so none is unknown."""
    result: dict[str, tuple[str, ...]] = {}
    for dept_code in sorted(table.data):
        addresses = _address_list(table, dept_code, table.raw(dept_code))
        if addresses:
            result[dept_code] = addresses
    return MappingProxyType(result)
