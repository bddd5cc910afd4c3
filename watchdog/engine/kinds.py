"""The rule kinds: each defined once, by its parameter class and its registry entry.

A kind's parameter class is its schema: `rulefiles` reads `[rules.params]` against the
class's fields (names, types, defaults), so a parameter exists in exactly one place.
`prepare` turns checked parameters into what the kind evaluates with, reading any
reference data file they name; it raises `ValueError` with a message naming the
problem, which the loader prefixes with file and key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

from watchdog.clock import GradingPolicy, Severity
from watchdog.engine.contest import ALL_FIELDS
from watchdog.engine.fees import CatalogueEntry, FeeCatalogue
from watchdog.engine.inspections import RepeatParams
from watchdog.engine.patterns import Pattern, PatternParams, compile_pattern, engine_unavailable
from watchdog.engine.procedure import STEP_CODES, ProcedureTemplate


@dataclass(frozen=True)
class OverdueParams:
    warning_days: int = 2
    red_days_past_promised: int = 5


@dataclass(frozen=True)
class ProcedureParams:
    templates: str  # reference data file, relative to the rules folder
    default_template: str = "general"


@dataclass(frozen=True)
class FeeParams:
    catalogue: str  # reference data file, relative to the rules folder
    check_minimum: bool = False


@dataclass(frozen=True)
class InspectionParams:
    window_days: int = 30
    max_in_window: int = 1
    exempt_kinds: tuple[str, ...] = ("complaint", "followup")
    yearly_cap: int | None = None


@dataclass(frozen=True)
class DataAlteredParams:
    # Revised fields ("cases.accepted_at") that raise a finding; empty: every one.
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcedureTemplates:
    """Templates by name, the template of each listed matter, and the default."""

    templates: Mapping[str, ProcedureTemplate]
    by_matter: Mapping[str, str]
    default: str

    def for_matter(self, matter_code: str | None) -> ProcedureTemplate:
        name = self.by_matter.get(matter_code or "", self.default)
        return self.templates[name]


@dataclass(frozen=True)
class RuleKind:
    """A registry entry: the kind's name, parameter class, findings and default grades."""

    name: str
    params: type
    findings: tuple[str, ...]
    default_severity: Mapping[str, Severity]
    prepare: Callable[[Any, Path], Any] = field(repr=False)


def _prepare_overdue(params: OverdueParams, _rules_dir: Path) -> GradingPolicy:
    return GradingPolicy(params.warning_days, params.red_days_past_promised)


def _prepare_inspection(params: InspectionParams, _rules_dir: Path) -> RepeatParams:
    return RepeatParams(
        window_days=params.window_days,
        max_in_window=params.max_in_window,
        exempt_kinds=frozenset(params.exempt_kinds),
        yearly_cap=params.yearly_cap,
    )


def _prepare_data_altered(params: DataAlteredParams, _rules_dir: Path) -> frozenset[str]:
    unknown = sorted(set(params.fields) - ALL_FIELDS)
    if unknown:
        raise ValueError(
            f"fields: unknown field {unknown[0]!r} (known: {', '.join(sorted(ALL_FIELDS))})"
        )
    return frozenset(params.fields)


def _read_data(rules_dir: Path, name: str) -> dict[str, Any]:
    path = rules_dir / name
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"file not found: {name}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{name}: invalid TOML: {exc}") from None


def _prepare_procedure(params: ProcedureParams, rules_dir: Path) -> ProcedureTemplates:
    data = _read_data(rules_dir, params.templates)
    templates: dict[str, ProcedureTemplate] = {}
    for name, table in (data.get("templates") or {}).items():
        where = f"{params.templates}: templates.{name}"
        steps = tuple(table.get("steps") or ())
        unknown = [step for step in steps if step not in STEP_CODES]
        if unknown:
            raise ValueError(f"{where}.steps: unknown step {unknown[0]!r}")
        pairs = tuple(tuple(pair) for pair in table.get("distinct_handlers") or ())
        try:
            templates[name] = ProcedureTemplate(name, steps, pairs)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if params.default_template not in templates:
        raise ValueError(
            f"default_template {params.default_template!r} is not in {params.templates}"
        )
    by_matter = dict(data.get("matters") or {})
    for matter, name in by_matter.items():
        if name not in templates:
            raise ValueError(f"{params.templates}: matters.{matter}: unknown template {name!r}")
    return ProcedureTemplates(
        MappingProxyType(templates), MappingProxyType(by_matter), params.default_template
    )


def _amount(value: Any, where: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f'{where}: expected an amount like "80.00", got {value!r}') from None


def _day(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    raise ValueError(f"{where}: expected a date like 2026-01-01, got {value!r}")


def _prepare_fee(params: FeeParams, rules_dir: Path) -> FeeCatalogue:
    data = _read_data(rules_dir, params.catalogue)
    entries = []
    for index, item in enumerate(data.get("items") or ()):
        where = f"{params.catalogue}: items[{index}]"
        try:
            entries.append(
                CatalogueEntry(
                    code=str(item["code"]),
                    name=str(item["name"]),
                    max_amount=_amount(item["max"], f"{where}.max"),
                    min_amount=_amount(item["min"], f"{where}.min") if "min" in item else None,
                    valid_from=_day(item["valid_from"], f"{where}.valid_from"),
                    valid_to=_day(item["valid_to"], f"{where}.valid_to")
                    if "valid_to" in item
                    else None,
                    matters=frozenset(item.get("matters") or ()),
                    charge_at_minimum=bool(item.get("charge_at_minimum", False)),
                )
            )
        except KeyError as exc:
            raise ValueError(f"{where}: missing {exc.args[0]}") from None
    try:
        return FeeCatalogue(entries)
    except ValueError as exc:
        raise ValueError(f"{params.catalogue}: {exc}") from None


def _prepare_pattern(params: PatternParams, _rules_dir: Path) -> Pattern:
    # The rule is checked first, so a file is checked precisely even where the engine is
    # missing; then a missing engine (Python 3.13) skips the rule with a clear line.
    pattern = compile_pattern(params)
    unavailable = engine_unavailable()
    if unavailable is not None:
        raise ValueError(unavailable)
    return pattern


class _DeclaredInRule(tuple[str, ...]):
    """The findings of the pattern kind: each rule declares its own (`params.finding`,
    graded by `params.severity`), so `[rules.severity]` names none of them; the one
    entry is what the loader prints as the known findings."""

    def __contains__(self, item: object) -> bool:
        return False


KINDS: Mapping[str, RuleKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            RuleKind(
                "overdue",
                OverdueParams,
                ("overdue",),
                {},  # graded by the legal clock
                _prepare_overdue,
            ),
            RuleKind(
                "procedure",
                ProcedureParams,
                ("step_missing", "out_of_order", "before_acceptance", "same_handler"),
                {"*": Severity.RED},
                _prepare_procedure,
            ),
            RuleKind(
                "fee",
                FeeParams,
                (
                    "not_in_catalogue",
                    "not_in_force",
                    "over_standard",
                    "not_applicable",
                    "above_minimum",
                ),
                {
                    "*": Severity.RED,
                    "not_applicable": Severity.YELLOW,
                    "above_minimum": Severity.WARNING,
                },
                _prepare_fee,
            ),
            RuleKind(
                "inspection",
                InspectionParams,
                ("repeat",),
                {"*": Severity.YELLOW},
                _prepare_inspection,
            ),
            RuleKind(
                "pattern",
                PatternParams,
                _DeclaredInRule(("none: a pattern rule grades its finding with params.severity",)),
                {"*": Severity.YELLOW},
                _prepare_pattern,
            ),
            RuleKind(
                "data_altered",
                DataAlteredParams,
                ("data_altered",),
                {"*": Severity.RED},
                _prepare_data_altered,
            ),
        )
    }
)
