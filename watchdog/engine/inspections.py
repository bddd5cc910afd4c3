"""The repeat-inspection rule (重复检查) as pure functions over inspection records.

Enterprises are not to be inspected again and again by one department or several: such
inspections are to be merged or done jointly. This module decides which inspections break
that, exactly as domain.md "Precise definitions / Repeat inspection" states, and writes
evidence a supervisor can check by hand. No database, no clock, no I/O: the caller turns
stored rows into `InspectionRecord`s and `RepeatBreach`es into findings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from operator import attrgetter
from typing import Any, NamedTuple

KIND = "inspection"
FINDING = "repeat"
INSPECTION_KINDS = ("random", "routine", "complaint", "followup", "joint")
REASON_WINDOW = "window"
REASON_YEARLY_CAP = "yearly_cap"
# Evidence lists at most this many earlier units in the window (the nearest ones), while
# `units_in_window` always gives the full count. Real enterprises see a handful a month;
# the limit is for bad data (one placeholder target_id for every row of a source), which
# would otherwise make evidence, and run time, quadratic.
EVIDENCE_UNITS = 20


@dataclass(frozen=True)
class RepeatParams:
    """The rule's parameters; invalid values fail here, at rule load, not mid-evaluation."""

    window_days: int = 30
    max_in_window: int = 1
    exempt_kinds: frozenset[str] = frozenset({"complaint", "followup"})
    yearly_cap: int | None = None

    def __post_init__(self) -> None:
        # bool is an int subclass; `window_days = true` in a rule file is a typo, not 1.
        if not _is_int(self.window_days) or self.window_days < 1:
            raise ValueError(f"window_days must be positive, got {self.window_days!r}")
        if not _is_int(self.max_in_window) or self.max_in_window < 1:
            raise ValueError(f"max_in_window must be at least 1, got {self.max_in_window!r}")
        if self.yearly_cap is not None and (not _is_int(self.yearly_cap) or self.yearly_cap < 1):
            raise ValueError(f"yearly_cap must be at least 1 or None, got {self.yearly_cap!r}")
        given: object = self.exempt_kinds  # rule files are untyped: check what came
        if isinstance(given, str):
            # frozenset("complaint") would silently become a set of letters.
            raise ValueError(f"exempt_kinds must be a set of kinds, got {given!r}")
        kinds = frozenset(self.exempt_kinds)
        unknown = sorted(kinds.difference(INSPECTION_KINDS))
        if unknown:
            raise ValueError(
                f"exempt_kinds has unknown kinds {unknown}, known: {', '.join(INSPECTION_KINDS)}"
            )
        # Accept any set-like from a rule file but keep the params hashable.
        object.__setattr__(self, "exempt_kinds", kinds)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


DEFAULT_PARAMS = RepeatParams()


@dataclass(frozen=True)
class InspectionRecord:
    """One inspection (涉企检查) as the source reported it, dated in the source's zone."""

    inspection_id: str
    target_id: str
    target_name: str | None
    dept_code: str
    inspected_on: date
    kind: str
    joint_group: str | None


@dataclass(frozen=True, slots=True)
class RepeatBreach:
    """One unit of inspection that should not have happened, charged to its department.

    `subject` is the unit's representative (smallest) inspection_id, so the fingerprint
    stays the same however many times the same inspections are evaluated.
    """

    subject: str
    dept_code: str
    target_id: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def finding(self) -> str:
        return FINDING


class _Unit(NamedTuple):
    """What counts as one inspection: a lone inspection or a whole joint group.

    A NamedTuple rather than a dataclass: a province has millions of these, and tuple
    construction is several times cheaper than a frozen dataclass's.
    """

    day: int  # inspected_on.toordinal(): window arithmetic on ints, not timedeltas
    rep_id: str
    on: date
    dept_code: str
    member_ids: tuple[str, ...]
    target_name: str | None


# Same-date units are ordered by representative id; ids are unique, so this is total.
_ORDER = attrgetter("day", "rep_id")


def find_repeats(
    inspections: Iterable[InspectionRecord], params: RepeatParams = DEFAULT_PARAMS
) -> list[RepeatBreach]:
    """Every repeat inspection, ordered by target_id, unit date, representative id.

    1. Drop inspections whose kind is in `params.exempt_kinds` (before grouping, so an
       exempt member of a joint group neither dates nor represents it).
    2. Form units: rows sharing (target_id, joint_group) with a non-null joint_group are
       one unit, dated at their earliest date and represented by their smallest
       inspection_id and that row's dept_code; a row with a null joint_group is a unit.
    3. Per target, sort units by (date, representative id): O(m log m).
    4. Slide a window over that order with two indices: `left` only moves forward, to the
       first unit dated on or after `date − window_days`, so the units counted for unit
       `i` are exactly `left..i` (earlier in order, never later). More than
       `max_in_window` of them makes unit `i` a repeat.
    5. With a yearly cap, count units per (calendar year of the unit's date, unit's
       dept_code) in the same order; the ones past the first `yearly_cap` breach too.
    6. A unit with either reason is ONE breach listing both reasons.

    Time is O(n log n): sorting dominates, the window indices each move at most n times, and
    each breach's evidence is bounded by `EVIDENCE_UNITS` and `yearly_cap`.
    """
    exempt = params.exempt_kinds
    # Only references to the caller's records are held across targets; each target's
    # units are built, scanned and dropped in turn, so they die young and the cyclic
    # GC never walks millions of them (a third of the run time at 1M inspections otherwise).
    by_target: defaultdict[str, list[InspectionRecord]] = defaultdict(list)
    for record in inspections:
        if record.kind not in exempt:
            by_target[record.target_id].append(record)
    breaches: list[RepeatBreach] = []
    for target_id in sorted(by_target):
        units = _units(by_target[target_id])
        units.sort(key=_ORDER)
        breaches.extend(_scan(target_id, units, params))
    return breaches


def _units(records: list[InspectionRecord]) -> list[_Unit]:
    """Step 2 for one target's counted records: its units, in no particular order."""
    units: list[_Unit] = []
    groups: defaultdict[str, list[InspectionRecord]] = defaultdict(list)
    for record in records:
        if record.joint_group is None:
            units.append(
                _Unit(
                    record.inspected_on.toordinal(),
                    record.inspection_id,
                    record.inspected_on,
                    record.dept_code,
                    (record.inspection_id,),
                    record.target_name,
                )
            )
        else:
            groups[record.joint_group].append(record)
    for members in groups.values():
        members.sort(key=attrgetter("inspection_id"))
        rep = members[0]
        on = min(member.inspected_on for member in members)
        # Departments type the enterprise name by hand; prefer the representative's,
        # but a blank there should not hide a name another member carries.
        name = next((m.target_name for m in members if m.target_name), rep.target_name)
        units.append(
            _Unit(
                on.toordinal(),
                rep.inspection_id,
                on,
                rep.dept_code,
                tuple(member.inspection_id for member in members),
                name,
            )
        )
    return units


def _scan(target_id: str, units: list[_Unit], params: RepeatParams) -> list[RepeatBreach]:
    """Steps 4 to 6 over one target's units, already in (date, representative id) order."""
    breaches: list[RepeatBreach] = []
    cap = params.yearly_cap
    # Per (year, dept): how many units so far, and the first `cap` of them (the ones the
    # cap allowed), kept as evidence for every later unit that goes past it.
    seen_in_year: dict[tuple[int, str], int] = {}
    allowed_in_year: defaultdict[tuple[int, str], list[_Unit]] = defaultdict(list)
    left = 0
    for i, unit in enumerate(units):
        lower = unit.day - params.window_days
        while units[left].day < lower:
            left += 1
        reasons: list[str] = []
        if i - left + 1 > params.max_in_window:
            reasons.append(REASON_WINDOW)
        year_key = (unit.on.year, unit.dept_code)
        position = 0
        if cap is not None:
            position = seen_in_year.get(year_key, 0) + 1
            seen_in_year[year_key] = position
            if position <= cap:
                allowed_in_year[year_key].append(unit)
            else:
                reasons.append(REASON_YEARLY_CAP)
        if not reasons:
            continue
        evidence: dict[str, Any] = {
            "target_id": target_id,
            "target_name": unit.target_name,
            "date": unit.on.isoformat(),
            "dept_code": unit.dept_code,
            "inspection_ids": list(unit.member_ids),
            "reasons": reasons,
            "window_days": params.window_days,
            "max_in_window": params.max_in_window,
            # A window reaching before year 1 (absurd window_days) starts at date.min.
            "window_start": date.fromordinal(max(lower, 1)).isoformat(),
            "units_in_window": i - left + 1,
            "earlier_in_window": [
                _describe(earlier) for earlier in units[max(left, i - EVIDENCE_UNITS) : i]
            ],
            "yearly_cap": cap,
        }
        if REASON_YEARLY_CAP in reasons:
            evidence["year"] = unit.on.year
            evidence["units_in_year"] = position
            evidence["allowed_in_year"] = [_describe(u) for u in allowed_in_year[year_key]]
        breaches.append(RepeatBreach(unit.rep_id, unit.dept_code, target_id, evidence))
    return breaches


def _describe(unit: _Unit) -> dict[str, Any]:
    return {
        "inspection_id": unit.rep_id,
        "date": unit.on.isoformat(),
        "dept_code": unit.dept_code,
        "inspection_ids": list(unit.member_ids),
    }
