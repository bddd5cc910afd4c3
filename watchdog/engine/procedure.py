"""The procedure rule (违反程序): the template's steps, in order, by different people.

Pure functions over one case's steps: no database, no clock, no I/O. The caller picks the
template for the case's matter (or the default one) and passes aware datetimes; times are
compared as instants, so steps stored with different UTC offsets still order correctly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

# Canonical step codes (domain.md, "steps"). Templates may also name other codes, because
# sources keep codes they cannot map ("other codes are kept as they come").
STEP_CODES = (
    "accept",
    "review",
    "verify",
    "decide",
    "complete",
    "deliver",
    "site_inspection",
    "supplement_notice",
)

FINDINGS = ("before_acceptance", "out_of_order", "same_handler", "step_missing")

# `accept` is acceptance itself, and a 补正告知 comes before acceptance by its nature
# (《行政许可法》 art. 32): neither can be "too early" for acceptance.
_MAY_PRECEDE_ACCEPTANCE = frozenset({"accept", "supplement_notice"})


@dataclass(frozen=True)
class ProcedureTemplate:
    """The required steps of a class of matters, in order, and who must not coincide.

    `distinct_handlers` lists pairs of steps that must be done by different people
    (承办人 → 审查人 → 审批人), e.g. `(("review", "decide"),)`.
    """

    name: str
    steps: tuple[str, ...]
    distinct_handlers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"procedure template {self.name!r} has no steps")
        repeated = sorted({step for step in self.steps if self.steps.count(step) > 1})
        if repeated:
            raise ValueError(
                f"procedure template {self.name!r} repeats step(s) {', '.join(repeated)}: "
                f"got {list(self.steps)}"
            )
        for pair in self.distinct_handlers:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(
                    f"procedure template {self.name!r}: a distinct-handler pair needs two "
                    f"different steps, got {list(pair)}"
                )
            unknown = [step for step in pair if step not in self.steps]
            if unknown:
                raise ValueError(
                    f"procedure template {self.name!r}: distinct-handler pair {list(pair)} "
                    f"names step(s) not in the template {list(self.steps)}: "
                    f"{', '.join(unknown)}"
                )


class StepRecord(NamedTuple):
    """One step row of a case. `finished_at` None: not finished (yet); a naive time is
    refused when the step is checked.

    A named tuple, not a dataclass: a full evaluation builds one for every stored step
    (4 million at a million cases), and a frozen dataclass cost three times as much.
    """

    step_id: str
    step_code: str
    finished_at: datetime | None
    handler_id: str | None


@dataclass(frozen=True)
class ProcedureBreach:
    """One procedure finding of one case; `finding` is one of FINDINGS."""

    finding: str
    subject: str
    evidence: Mapping[str, Any]


def check_procedure(
    template: ProcedureTemplate,
    accepted_at: datetime | None,
    steps: Sequence[StepRecord],
    as_of: datetime,
) -> list[ProcedureBreach]:
    """The procedure breaches of one case as of `as_of`, sorted by finding, then subject.

    1. Not accepted, or accepted after `as_of` (not happened yet): nothing to check.
    2. Drop the steps that have not happened: no `finished_at`, or finished after `as_of`.
    3. Each step code is represented by its earliest occurrence (ties: smallest step_id,
       so the result does not depend on row order); its handler is that row's handler.
    4. step_missing: a template step absent while a later template step is present.
    5. out_of_order: a present template step that finished strictly earlier than a present
       step placed before it in the template; reported once, on the step that was early.
    6. before_acceptance: any present step except accept and supplement_notice, in the
       template or not, that finished strictly before `accepted_at`.
    7. same_handler: a distinct-handler pair, both present, with the same non-null handler;
       subject is the two codes in template order joined by a comma.
    """
    _require_aware("as_of", as_of)
    if accepted_at is None:
        return []
    _require_aware("accepted_at", accepted_at)
    if accepted_at > as_of:
        return []

    seen, at = _earliest(steps, as_of)
    order = template.steps
    breaches: list[ProcedureBreach] = []
    # The evidence every breach shares, built only for a case that has one (most have none).
    base: dict[str, Any] = {}

    def evidence(**found: Any) -> dict[str, Any]:
        if not base:
            base.update(
                template=template.name,
                template_steps=list(order),
                accepted_at=accepted_at.isoformat(),
                as_of=as_of.isoformat(),
            )
        return {**base, **found}

    # Template positions of the present steps, in template order.
    present_at = [index for index, code in enumerate(order) if code in seen]
    # A step is missing when absent while a later template step is present, that is
    # when it is absent and placed before the last present one: none when the present
    # steps are the template's first ones (the usual case).
    if present_at and present_at[-1] >= len(present_at):
        for index in range(present_at[-1]):
            code = order[index]
            if code not in seen:
                later = [seen[c] for c in order[index + 1 :] if c in seen]
                found = evidence(missing_step=code, later_steps=_steps(later))
                breaches.append(ProcedureBreach("step_missing", code, found))

    present = [order[index] for index in present_at]
    times = [at[code] for code in present]
    # Only a step finished earlier than a step placed before it is out of order, so
    # present steps whose times never go down (the usual case) have none.
    if _goes_down(times):
        for i, code in enumerate(present):
            # The steps placed before this one in the template that it finished ahead of.
            overtaken = [
                seen[c] for c, t in zip(present[:i], times[:i], strict=True) if t > times[i]
            ]
            if overtaken:
                found = evidence(step=_step(seen[code]), finished_before=_steps(overtaken))
                breaches.append(ProcedureBreach("out_of_order", code, found))

    for code, finished in at.items():
        if finished < accepted_at and code not in _MAY_PRECEDE_ACCEPTANCE:
            found = evidence(step=_step(seen[code]))
            breaches.append(ProcedureBreach("before_acceptance", code, found))

    for pair in _ordered_pairs(template):
        first, second = seen.get(pair[0]), seen.get(pair[1])
        if first is None or second is None or first.handler_id is None:
            continue
        if first.handler_id == second.handler_id:
            found = evidence(handler_id=first.handler_id, steps=_steps([first, second]))
            breaches.append(ProcedureBreach("same_handler", ",".join(pair), found))

    if len(breaches) > 1:
        breaches.sort(key=lambda breach: (breach.finding, breach.subject))
    return breaches


def _goes_down(times: list[datetime]) -> bool:
    previous = None
    for moment in times:
        if previous is not None and moment < previous:
            return True
        previous = moment
    return False


def _earliest(
    steps: Sequence[StepRecord], as_of: datetime
) -> tuple[dict[str, StepRecord], dict[str, datetime]]:
    """The earliest occurrence of each step code that happened by `as_of` (steps 2-3),
    and its time. Per step of every case of a full evaluation: kept to plain tuple
    unpacking and dict lookups."""
    seen: dict[str, StepRecord] = {}
    at: dict[str, datetime] = {}
    for step in steps:
        step_id, code, finished, _ = step
        try:
            if finished is None or finished > as_of:
                continue
        except TypeError:  # naive against aware: checked only then, it costs per step
            if finished is not None:
                _require_aware(f"step {step_id!r} finished_at", finished)
            raise
        current = at.get(code)
        if (
            current is None
            or finished < current
            or (finished == current and step_id < seen[code].step_id)
        ):
            seen[code] = step
            at[code] = finished
    return seen, at


def _ordered_pairs(template: ProcedureTemplate) -> tuple[tuple[str, str], ...]:
    """Distinct-handler pairs in template order, each once, however they were written."""
    # Templates are few and frozen; cache the answer on each one (per case it was a
    # sort and a set of tuples, for every case of the county).
    cached: tuple[tuple[str, str], ...] | None = _PAIRS.get(template)
    if cached is None:
        position = {code: index for index, code in enumerate(template.steps)}
        pairs = {
            (a, b) if position[a] < position[b] else (b, a) for a, b in template.distinct_handlers
        }
        cached = tuple(sorted(pairs, key=lambda pair: (position[pair[0]], position[pair[1]])))
        _PAIRS[template] = cached
    return cached


_PAIRS: dict[ProcedureTemplate, tuple[tuple[str, str], ...]] = {}


def _at(step: StepRecord) -> datetime:
    # Only called on steps kept by _earliest, which all have a finished_at.
    assert step.finished_at is not None
    return step.finished_at


def _step(step: StepRecord) -> dict[str, Any]:
    return {
        "step_code": step.step_code,
        "step_id": step.step_id,
        "finished_at": _at(step).isoformat(),
        "handler_id": step.handler_id,
    }


def _steps(steps: Sequence[StepRecord]) -> list[dict[str, Any]]:
    return [_step(step) for step in steps]


def _require_aware(what: str, moment: datetime) -> None:
    # Naive times would silently compare in an unknown zone; the caller must localise them.
    if moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment.isoformat()}")
