"""The fee rule (目录外收费): is a charge lawful under the fee catalogue in force that day?

Pure functions: no database, no I/O. The catalogue is the 行政事业性收费目录清单: items have
a code, a maximum standard amount, an optional minimum, validity dates (items get
abolished) and optionally the matters they apply to. The caller converts the charge time
to a date in the source's zone; amounts are Decimal yuan, never floats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import pairwise
from types import MappingProxyType
from typing import Any

from watchdog.clock import Severity

FINDINGS = ("above_minimum", "not_applicable", "not_in_catalogue", "not_in_force", "over_standard")

# Grades the domain fixes whatever the rule's own severity: charging an enterprise above
# the lower bound where policy says to charge the minimum is a warning (预警). The other
# findings take the rule's severity.
FINDING_SEVERITY: Mapping[str, Severity] = MappingProxyType({"above_minimum": Severity.WARNING})


@dataclass(frozen=True)
class CatalogueEntry:
    """One catalogue item over one validity range; `valid_to` None: not abolished.

    `matters` empty: the item applies to every matter. `charge_at_minimum`: policy says
    this item is charged at its lower bound (see `check_fee(check_minimum=True)`).
    """

    code: str
    name: str
    max_amount: Decimal
    min_amount: Decimal | None
    valid_from: date
    valid_to: date | None
    matters: frozenset[str] = frozenset()
    charge_at_minimum: bool = False

    def __post_init__(self) -> None:
        # Checked here so that an invalid entry cannot exist, in a catalogue or not.
        what = f"fee catalogue entry {self.code!r}"
        if not self.code:
            raise ValueError(f"fee catalogue entry {self.name!r} has an empty code")
        if not self.max_amount.is_finite() or self.max_amount < 0:
            raise ValueError(f"{what}: max_amount must be >= 0, got {self.max_amount}")
        if self.min_amount is not None:
            if not self.min_amount.is_finite() or self.min_amount < 0:
                raise ValueError(f"{what}: min_amount must be >= 0, got {self.min_amount}")
            if self.min_amount > self.max_amount:
                raise ValueError(
                    f"{what}: min_amount {self.min_amount} exceeds max_amount {self.max_amount}"
                )
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(
                f"{what}: valid_to {self.valid_to.isoformat()} is before "
                f"valid_from {self.valid_from.isoformat()}"
            )

    def in_force_on(self, day: date) -> bool:
        """Validity is inclusive at both ends."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    @property
    def validity(self) -> str:
        """The range as a person writes it: `2020-01-01..2024-12-31`, `2025-01-01..open`."""
        end = self.valid_to.isoformat() if self.valid_to is not None else "open"
        return f"{self.valid_from.isoformat()}..{end}"


class FeeCatalogue:
    """The catalogue: per code, entries with non-overlapping validity, oldest first."""

    def __init__(self, entries: Iterable[CatalogueEntry]) -> None:
        by_code: defaultdict[str, list[CatalogueEntry]] = defaultdict(list)
        for entry in entries:
            by_code[entry.code].append(entry)
        self._entries: dict[str, tuple[CatalogueEntry, ...]] = {}
        for code, found in by_code.items():
            found.sort(key=lambda entry: entry.valid_from)
            # Sorted by start, ranges are disjoint exactly when each one ends before the
            # next begins, so checking neighbours finds any overlap.
            for earlier, later in pairwise(found):
                if earlier.valid_to is None or earlier.valid_to >= later.valid_from:
                    raise ValueError(
                        f"fee code {code!r} has overlapping catalogue entries: "
                        f"{earlier.validity} and {later.validity}"
                    )
            self._entries[code] = tuple(found)

    def entries_for(self, code: str) -> tuple[CatalogueEntry, ...]:
        """Every entry of `code`, oldest first; () when the code is not catalogued."""
        return self._entries.get(code, ())

    def in_force(self, code: str, on: date) -> CatalogueEntry | None:
        """The entry of `code` valid on `on` (at most one: ranges do not overlap)."""
        return next((entry for entry in self.entries_for(code) if entry.in_force_on(on)), None)


@dataclass(frozen=True)
class FeeRecord:
    """One charge of one case, dated in the source's zone."""

    fee_id: str
    fee_code: str
    fee_name: str | None
    amount: Decimal
    charged_on: date
    matter_code: str | None

    def __post_init__(self) -> None:
        if not self.amount.is_finite():
            raise ValueError(f"fee {self.fee_id!r}: amount must be a number, got {self.amount}")


@dataclass(frozen=True)
class FeeBreach:
    """One fee finding; `finding` is one of FINDINGS, `subject` the fee_id."""

    finding: str
    subject: str
    evidence: Mapping[str, Any]


def check_fee(
    catalogue: FeeCatalogue, fee: FeeRecord, *, check_minimum: bool = False
) -> list[FeeBreach]:
    """The breaches of one charge, sorted by finding.

    1. The code has no catalogue entry at all: not_in_catalogue, and nothing else to check.
    2. It has entries but none in force on the charge date (inclusive at both ends):
       not_in_force, and nothing else to check.
    3. Against the entry in force: over_standard when the amount exceeds its maximum
       (equal is fine).
    4. not_applicable when the entry lists matters and the case's matter is not among
       them (an unknown matter is not among them). Steps 3 and 4 may both hold.
    5. Only with `check_minimum`, for an entry with `charge_at_minimum` and a minimum:
       above_minimum when the amount exceeds the minimum and is not over the standard
       (over_standard already reports that charge).
    """
    entries = catalogue.entries_for(fee.fee_code)
    if not entries:
        return [FeeBreach("not_in_catalogue", fee.fee_id, _base(fee))]
    entry = catalogue.in_force(fee.fee_code, fee.charged_on)
    if entry is None:
        evidence = {**_base(fee), "catalogue_entries": [_entry(e) for e in entries]}
        return [FeeBreach("not_in_force", fee.fee_id, evidence)]

    found: list[str] = []
    over = fee.amount > entry.max_amount
    if over:
        found.append("over_standard")
    if entry.matters and fee.matter_code not in entry.matters:
        found.append("not_applicable")
    if (
        check_minimum
        and entry.charge_at_minimum
        and entry.min_amount is not None
        and fee.amount > entry.min_amount
        and not over
    ):
        found.append("above_minimum")
    if not found:
        return []  # most charges: no evidence to write
    evidence = {**_base(fee), "catalogue_entry": _entry(entry)}
    return [FeeBreach(finding, fee.fee_id, evidence) for finding in sorted(found)]


def _base(fee: FeeRecord) -> dict[str, Any]:
    """The evidence every breach of a charge starts with."""
    return {
        "fee_code": fee.fee_code,
        "fee_name": fee.fee_name,
        "amount": _money(fee.amount),
        "charged_on": fee.charged_on.isoformat(),
        "matter_code": fee.matter_code,
    }


def _entry(entry: CatalogueEntry) -> dict[str, Any]:
    return {
        "code": entry.code,
        "name": entry.name,
        "max_amount": _money(entry.max_amount),
        "min_amount": _money(entry.min_amount) if entry.min_amount is not None else None,
        "valid_from": entry.valid_from.isoformat(),
        "valid_to": entry.valid_to.isoformat() if entry.valid_to is not None else None,
        "matters": sorted(entry.matters),
        "charge_at_minimum": entry.charge_at_minimum,
    }


def _money(amount: Decimal) -> str:
    # Fixed-point text: str() would print Decimal("1E+2") as "1E+2", not "100".
    return f"{amount:f}"
