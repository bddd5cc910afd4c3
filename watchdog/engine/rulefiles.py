"""Rule files (`rules/*.toml`) → checked, frozen rule specifications.

Each file holds one or more `[[rules]]` tables:

    [[rules]]
    id = "overdue"               # unique across the folder
    kind = "overdue"             # a registered kind (watchdog.engine.kinds)
    title = "办件超期"
    basis = "《中华人民共和国行政许可法》第四十二条"
    in_force_from = 2025-01-01   # optional, inclusive
    in_force_to = 2027-12-31     # optional, inclusive
    [rules.severity]             # optional: finding = "warning" | "yellow" | "red"
    [rules.params]               # the kind's parameters

Every problem is one line naming file, key and value; a file with a problem is
skipped as a whole and the others load, so one broken file never stops the rest.
"""

from __future__ import annotations

import hashlib
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import date
from pathlib import Path
from types import MappingProxyType, NoneType, UnionType
from typing import Any

from watchdog.clock import Severity
from watchdog.engine.kinds import KINDS, RuleKind

_RULE_KEYS = {"id", "kind", "title", "basis", "in_force_from", "in_force_to", "severity", "params"}


@dataclass(frozen=True)
class RuleSpec:
    """One checked rule, ready to evaluate."""

    id: str
    kind: str
    title: str
    basis: str
    in_force_from: date | None
    in_force_to: date | None
    severity: Mapping[str, Severity]  # finding → grade, overrides over the kind's defaults
    params: Any  # the kind's parameter object
    prepared: Any  # what the kind evaluates with (templates, catalogue, grading policy)
    file: Path

    def in_force(self, on: date) -> bool:
        after_start = self.in_force_from is None or on >= self.in_force_from
        return after_start and (self.in_force_to is None or on <= self.in_force_to)

    def severity_of(self, finding: str) -> Severity | None:
        """The grade of a finding: the rule's override, else the kind's default."""
        defaults = KINDS[self.kind].default_severity
        return self.severity.get(finding) or defaults.get(finding) or defaults.get("*")


@dataclass(frozen=True)
class RuleSet:
    """The rules that loaded, the problems of those that did not, and file digests."""

    rules: tuple[RuleSpec, ...]
    problems: tuple[str, ...]
    digests: Mapping[str, str]  # rule file name → sha256, to see what changed on reload
    fingerprint: str = ""  # one digest over every file of the folder, data files included

    def of_kind(self, kind: str) -> tuple[RuleSpec, ...]:
        return tuple(rule for rule in self.rules if rule.kind == kind)


def load_rules(directory: Path) -> RuleSet:
    """Load and check every `*.toml` file directly in `directory` (not `data/`)."""
    if not directory.is_dir():
        return RuleSet((), (f"{directory}: rules folder not found",), MappingProxyType({}))
    rules: list[RuleSpec] = []
    problems: list[str] = []
    digests: dict[str, str] = {}
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")):
        content = path.read_bytes()
        digests[path.name] = hashlib.sha256(content).hexdigest()
        loaded, file_problems = _load_file(path, content, (directory,))
        for rule in loaded:
            if rule.id in seen:
                file_problems.append(
                    f"{path.name}: rules: duplicate id {rule.id!r} (also in {seen[rule.id]})"
                )
        if file_problems:
            problems += file_problems
            continue
        for rule in loaded:
            seen[rule.id] = path.name
        rules += loaded
    return RuleSet(
        tuple(rules), tuple(problems), MappingProxyType(digests), folder_fingerprint(directory)
    )


def load_rule_file(path: Path, rules_dir: Path) -> RuleSet:
    """Load and check one rule file on its own (`watchdog rules test`), with the same
    checks as the folder; duplicate ids within the file are refused too.

    Reference data files resolve against the file's own folder first, then `rules_dir`,
    so a changed rule can be tried beside its changed catalogue, or alone against the
    reference data in force.
    """
    try:
        content = path.read_bytes()
    except OSError as exc:
        problem = f"{path.name}: cannot read: {exc.strerror or exc}"
        return RuleSet((), (problem,), MappingProxyType({}))
    directories = tuple(dict.fromkeys((path.parent, rules_dir)))
    loaded, problems = _load_file(path, content, directories)
    seen: set[str] = set()
    for rule in loaded:
        if rule.id in seen:
            problems.append(f"{path.name}: rules: duplicate id {rule.id!r}")
        seen.add(rule.id)
    digest = hashlib.sha256(content).hexdigest()
    return RuleSet(
        () if problems else tuple(loaded),
        tuple(problems),
        MappingProxyType({path.name: digest}),
        digest,
    )


def _data_dir(params: Any, directories: tuple[Path, ...]) -> Path:
    """The first folder holding every reference data file the parameters name.

    A data file is any string parameter naming a file in one of the folders; when no
    folder holds them all (or none is named), the first folder is used, so the kind
    reports the missing file as usual.
    """
    names = [
        value
        for spec in fields(params)
        if isinstance(value := getattr(params, spec.name), str)
        and any((folder / value).is_file() for folder in directories)
    ]
    for folder in directories:
        if all((folder / name).is_file() for name in names):
            return folder
    return directories[0]


def folder_fingerprint(directory: Path) -> str:
    """A digest of every TOML file under the rules folder (names and contents), so a
    change to a rule file or to its reference data is noticed without parsing."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.toml")) if directory.is_dir() else ():
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _load_file(
    path: Path, content: bytes, directories: tuple[Path, ...]
) -> tuple[list[RuleSpec], list[str]]:
    name = path.name
    try:
        data = tomllib.loads(content.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return [], [f"{name}: invalid TOML: {exc}"]
    problems = [f"{name}: {key}: unknown key" for key in sorted(set(data) - {"rules"})]
    tables = data.get("rules")
    if not isinstance(tables, list) or not tables:
        return [], [*problems, f"{name}: rules: expected one or more [[rules]] tables"]
    rules = []
    for index, table in enumerate(tables):
        rule = _load_rule(name, f"rules[{index}]", table, path, directories, problems)
        if rule is not None:
            rules.append(rule)
    return rules, problems


def _load_rule(
    name: str,
    where: str,
    table: dict[str, Any],
    path: Path,
    directories: tuple[Path, ...],
    problems: list[str],
) -> RuleSpec | None:
    before = len(problems)

    def problem(key: str, message: str) -> None:
        problems.append(f"{name}: {where}.{key}: {message}")

    for key in sorted(set(table) - _RULE_KEYS):
        problem(key, "unknown key")
    texts = {}
    for key in ("id", "kind", "title", "basis"):
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            problem(key, f"expected a non-empty string, got {value!r}")
        texts[key] = value if isinstance(value, str) else ""
    kind = KINDS.get(texts["kind"])
    if texts["kind"] and kind is None:
        problem("kind", f"unknown kind {texts['kind']!r} (known: {', '.join(KINDS)})")
    dates = {}
    for key in ("in_force_from", "in_force_to"):
        value = table.get(key)
        if value is not None and not (isinstance(value, date) and not hasattr(value, "hour")):
            problem(key, f"expected a date like 2026-01-01, got {value!r}")
            value = None
        dates[key] = value
    if (
        dates["in_force_from"]
        and dates["in_force_to"]
        and dates["in_force_to"] < dates["in_force_from"]
    ):
        problem("in_force_to", f"is before in_force_from, got {dates['in_force_to']}")
    if kind is None:
        return None
    severity = _read_severity(kind, table.get("severity") or {}, problem)
    params = _read_params(kind, table.get("params") or {}, problem)
    if len(problems) > before or params is None:
        return None
    try:
        prepared = kind.prepare(params, _data_dir(params, directories))
    except ValueError as exc:
        problem("params", str(exc))
        return None
    return RuleSpec(
        id=texts["id"],
        kind=kind.name,
        title=texts["title"],
        basis=texts["basis"],
        in_force_from=dates["in_force_from"],
        in_force_to=dates["in_force_to"],
        severity=MappingProxyType(severity),
        params=params,
        prepared=prepared,
        file=path,
    )


Problem = typing.Callable[[str, str], None]


def _read_severity(kind: RuleKind, table: Any, problem: Problem) -> dict[str, Severity]:
    if not isinstance(table, dict):
        problem("severity", f"expected a table, got {table!r}")
        return {}
    severity = {}
    for finding, value in table.items():
        if finding not in kind.findings:
            problem(f"severity.{finding}", f"unknown finding (known: {', '.join(kind.findings)})")
        elif value not in {s.value for s in Severity}:
            problem(f"severity.{finding}", f"expected warning, yellow or red, got {value!r}")
        else:
            severity[finding] = Severity(value)
    return severity


def _read_params(kind: RuleKind, table: Any, problem: Problem) -> Any:
    """The kind's parameter object from `[rules.params]`, its class being the schema."""
    if not isinstance(table, dict):
        problem("params", f"expected a table, got {table!r}")
        return None
    hints = typing.get_type_hints(kind.params)
    known = {f.name for f in fields(kind.params)}
    values: dict[str, Any] = {}
    ok = True
    for key in sorted(set(table) - known):
        problem(f"params.{key}", f"unknown parameter for kind {kind.name!r}")
        ok = False
    for spec in fields(kind.params):
        if spec.name not in table:
            if spec.default is MISSING:
                problem(f"params.{spec.name}", "is required")
                ok = False
            continue
        value, message = _coerce(table[spec.name], hints[spec.name])
        if message:
            problem(f"params.{spec.name}", message)
            ok = False
        values[spec.name] = value
    if not ok:
        return None
    try:
        return kind.params(**values)
    except ValueError as exc:
        problem("params", str(exc))
        return None


def _coerce(value: Any, hint: Any) -> tuple[Any, str]:
    """The value as the parameter's type, or a message saying what was expected."""
    optional = isinstance(hint, UnionType) and NoneType in typing.get_args(hint)
    if optional:
        hint = next(arg for arg in typing.get_args(hint) if arg is not NoneType)
    if hint is bool:
        return value, "" if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if hint is int:
        good = isinstance(value, int) and not isinstance(value, bool)
        if good and value < (1 if optional else 0):
            return value, f"must be at least {1 if optional else 0}, got {value}"
        return value, "" if good else f"expected an integer, got {value!r}"
    if hint is str:
        return value, "" if isinstance(value, str) else f"expected a string, got {value!r}"
    if typing.get_origin(hint) is tuple:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value), ""
        return value, f"expected a list of strings, got {value!r}"
    return value, f"unsupported parameter type {hint}"
