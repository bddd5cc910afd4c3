"""Pattern rules: event correlation within one case, written declaratively, run on durable-rules.

A pattern rule names a finding and a condition in durable-rules' JSON rule form over the
facts of one case (`FACT_TYPES`): one `case` fact, and its `step`, `fee` and `pause`
facts. For example, two supplement notices on one case:

    {"all": [
      {"first": {"t": "step", "step_code": "supplement_notice"}},
      {"later": {"t": "step", "step_code": "supplement_notice",
                 "$gt": {"seq": {"first": "seq"}}}}
    ]}

Each named condition states its fact type with `t` and tests the type's fields with
`{field: value}` (equality) or an operator (`OPERATORS`); several tests in one object all
hold. One test per condition may refer to a field of a fact named before it,
`{"first": "seq"}`. Times are Unix seconds, so they compare as numbers; a field without
a value is left out of the fact (test it with `$ex` / `$nex`).

Who does what: the host (this process) evaluates each condition's tests of a fact alone
and posts only the facts that pass one, marked with the verdict; durable-rules does the
correlation: which facts fill which names, every combination, and the references
between them. That split is also how its measured defects are contained
(durable-rules 2.0.28 is a 2020 source release):

- its C core crashes the process (SIGSEGV) on a conjunction holding a reference
  (upstream issue #381), on the batch assert, and, with `free(): invalid pointer`, on
  `delete_state` of a session holding a partial match; the engine therefore only ever
  sees single tests (`Condition.engine_condition`), facts are posted one at a time, and
  a case's facts are retracted from the host side after the case instead of deleting
  its session;
- it runs in a worker process per rule (`python -m watchdog.engine.patterns`, JSON
  lines): two rulesets in one process were seen corrupting each other, and a crash
  costs a worker, which is restarted; the case that crashed it is recorded as failed;
- every fact carries an explicit id (without one the engine rejects facts it thinks it
  has seen), and all cases share one session, emptied after each case: no MemoryError
  at the 1,025th live session, and constant memory;
- on Python 3.13 it does not build; `engine_unavailable()` then says why and pattern
  rules are reported as unavailable while everything else runs.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import operator
import os
import platform
import re
import string
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, Any

ENGINE_MODULE = "durable_rules_engine"
RULE_NAME = "match"  # the one rule of each pattern rule's ruleset
SESSION = "case"  # the one session every case is evaluated in, one case at a time

TEXT, TIME, NUMBER = "text", "time", "number"


@dataclass(frozen=True)
class FactType:
    """A kind of fact a case is posted as: its key field and its fields with their sort."""

    name: str
    key: str
    fields: Mapping[str, str]


def _fact_type(name: str, key: str, **fields: str) -> FactType:
    return FactType(name, key, MappingProxyType({key: TEXT, **fields}))


FACT_TYPES: Mapping[str, FactType] = MappingProxyType(
    {
        fact.name: fact
        for fact in (
            _fact_type(
                "case",
                "case_id",
                matter_code=TEXT,
                matter_name=TEXT,
                dept_code=TEXT,
                dept_name=TEXT,
                applicant_id=TEXT,
                applied_at=TIME,
                accepted_at=TIME,
                completed_at=TIME,
                promised_limit=NUMBER,
                statutory_limit=NUMBER,
                limit_unit=TEXT,
                result=TEXT,
            ),
            # seq: the step's place among the case's finished steps (by time, then id)
            _fact_type(
                "step",
                "step_id",
                step_code=TEXT,
                step_name=TEXT,
                handler_id=TEXT,
                finished_at=TIME,
                result=TEXT,
                seq=NUMBER,
            ),
            _fact_type(
                "fee", "fee_id", fee_code=TEXT, fee_name=TEXT, amount=NUMBER, charged_at=TIME
            ),
            _fact_type(
                "pause",
                "pause_id",
                kind=TEXT,
                started_at=TIME,
                ended_at=TIME,
                granted_days=NUMBER,
            ),
        )
    }
)

COMPARISONS = ("$lt", "$lte", "$gt", "$gte", "$neq")
OPERATORS = ("$and", "$or", *COMPARISONS, "$mt", "$imt", "$ex", "$nex")
SEVERITIES = ("warning", "yellow", "red")
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PatternParams:
    """The parameters of a `pattern` rule (its class is its schema).

    `finding`: the finding code it reports. `when`: the condition, durable-rules' JSON
    rule form (`{"all": [...]}` or `{"any": [...]}`). `subject`: the name of the matched
    fact whose id is the finding's subject (default: the last name). `severity`: the
    grade of its findings. `evidence`: the finding in plain words for a notice, with
    `{name.field}` placeholders filled from the matched facts.
    """

    finding: str
    when: str
    subject: str = ""
    severity: str = "yellow"
    evidence: str = ""


@dataclass(frozen=True)
class Reference:
    """A test against a fact matched earlier: `field op other.other_field`."""

    op: str  # "$eq" or one of COMPARISONS
    field: str
    other: str
    other_field: str


@dataclass(frozen=True)
class Condition:
    """One named condition: its fact type, its own tests, and at most one reference."""

    name: str
    fact_type: str
    test: Mapping[str, Any]  # normalized tests of the fact alone (evaluated by the host)
    reference: Reference | None
    _check: Callable[[Mapping[str, Any]], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_check", _compile(self.test))

    @property
    def sorts(self) -> Mapping[str, str]:
        """The fields of this condition's fact type and their sorts."""
        return FACT_TYPES[self.fact_type].fields

    def holds(self, fact: Mapping[str, Any]) -> bool:
        return fact.get("t") == self.fact_type and self._check(fact)

    def engine_condition(self) -> dict[str, Any]:
        """What durable-rules tests: the host's verdict on the fact's own tests as one
        flag, or, with a reference, the reference alone on a field only the facts that
        pass the own tests carry. durable-rules 2.0.28 crashes (SIGSEGV) on a conjunction
        holding a reference (upstream issue #381), so the engine never sees one."""
        if self.reference is None:
            return {f"_{self.name}": 1}
        ref = self.reference
        operand = {ref.other: ref.other_field}
        role_field = f"_{self.name}__{ref.field}"
        if ref.op == "$eq":
            return {role_field: operand}
        return {ref.op: {role_field: operand}}


@dataclass(frozen=True)
class Pattern:
    """A checked pattern rule, ready for the engine."""

    finding: str
    severity: str
    subject: str
    evidence: str
    mode: str  # "all" or "any"
    conditions: tuple[Condition, ...]

    @property
    def ruleset(self) -> str:
        """The JSON ruleset durable-rules compiles: one rule, named RULE_NAME."""
        body = [{c.name: c.engine_condition()} for c in self.conditions]
        return json.dumps({RULE_NAME: {self.mode: body}}, ensure_ascii=False, sort_keys=True)

    @property
    def fact_types(self) -> frozenset[str]:
        return frozenset(condition.fact_type for condition in self.conditions)

    def fact_type_of(self, name: str) -> str:
        return next(c.fact_type for c in self.conditions if c.name == name)

    def engine_facts(self, facts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The facts of one case as the engine gets them: only those that pass some
        condition's own tests, with that verdict added as fields (see `engine_condition`).
        Empty when the case cannot match (for `all`: a condition no fact passes), which
        spares the engine most cases."""
        posted: list[dict[str, Any]] = []
        filled: set[str] = set()
        for fact in facts:
            roles: dict[str, Any] = {}
            for condition in self.conditions:
                if not condition.holds(fact):
                    continue
                ref = condition.reference
                if ref is None:
                    roles[f"_{condition.name}"] = 1
                elif ref.field in fact:
                    roles[f"_{condition.name}__{ref.field}"] = fact[ref.field]
                else:
                    continue
                filled.add(condition.name)
            if roles:
                posted.append({**fact, **roles})
        if self.mode == "all" and len(filled) < len(self.conditions):
            return []
        return posted


_COMPARE: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {"$lt": operator.lt, "$lte": operator.le, "$gt": operator.gt, "$gte": operator.ge}
)


def _compile(node: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """A normalized test (one key) as a function of a fact, built once per rule since it
    runs for every fact of every case. A missing field fails every test but $nex."""
    key, value = next(iter(node.items()))
    if key in ("$and", "$or"):
        parts = [_compile(part) for part in value]
        if key == "$and":
            return lambda fact: all(part(fact) for part in parts)
        return lambda fact: any(part(fact) for part in parts)
    if not key.startswith("$"):
        return lambda fact: key in fact and fact[key] == value
    name, operand = next(iter(value.items()))
    if key in ("$ex", "$nex"):
        present = key == "$ex"
        return lambda fact: (name in fact) == present
    if key in ("$mt", "$imt"):
        pattern = re.compile(operand, re.IGNORECASE if key == "$imt" else 0)
        return lambda fact: isinstance(fact.get(name), str) and bool(pattern.fullmatch(fact[name]))
    if key == "$neq":
        return lambda fact: name in fact and fact[name] != operand
    compare, text = _COMPARE[key], isinstance(operand, str)
    # a text never compares with a number
    return lambda fact: (
        name in fact and isinstance(fact[name], str) == text and compare(fact[name], operand)
    )


# ---------------------------------------------------------------------------------------
# Checking a rule's parameters


class PatternError(ValueError):
    """A pattern rule that cannot run; the message names the parameter and the value."""


def compile_pattern(params: PatternParams) -> Pattern:
    """Check the parameters and build the pattern; raise PatternError."""
    if not _CODE.match(params.finding):
        raise PatternError(
            f"finding: expected a lower-case code like repeated_notice, got {params.finding!r}"
        )
    if params.severity not in SEVERITIES:
        raise PatternError(f"severity: expected warning, yellow or red, got {params.severity!r}")
    try:
        when = json.loads(params.when)
    except json.JSONDecodeError as exc:
        raise PatternError(f"when: invalid JSON ({exc}), got {_short(params.when)}") from None
    mode, conditions = _check_when(when)
    names = [condition.name for condition in conditions]
    subject = params.subject or names[-1]
    if subject not in names:
        raise PatternError(
            f"subject: not a name in when (names: {', '.join(names)}), got {subject!r}"
        )
    _check_template(params.evidence, {condition.name: condition for condition in conditions})
    return Pattern(params.finding, params.severity, subject, params.evidence, mode, conditions)


def _check_when(when: Any) -> tuple[str, tuple[Condition, ...]]:
    if not isinstance(when, dict) or len(when) != 1 or next(iter(when)) not in ("all", "any"):
        raise PatternError(
            f'when: expected {{"all": [...]}} or {{"any": [...]}}, got {_short(when)}'
        )
    mode, items = next(iter(when.items()))
    if not isinstance(items, list) or not items:
        raise PatternError(
            f"when.{mode}: expected a non-empty list of named conditions, got {_short(items)}"
        )
    conditions: list[Condition] = []
    for index, item in enumerate(items):
        where = f"when.{mode}[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise PatternError(
                f'{where}: expected one named condition like {{"first": {{...}}}}, '
                f"got {_short(item)}"
            )
        name, node = next(iter(item.items()))
        taken = any(c.name == name for c in conditions)
        if not _NAME.match(name) or taken:
            problem = "duplicate name" if taken else "expected a name like first"
            raise PatternError(f"{where}: {problem}, got {name!r}")
        # References may name only conditions before this one (the engine joins in order).
        earlier = {c.name: c.fact_type for c in conditions} if mode == "all" else {}
        conditions.append(_check_condition(name, node, f"{where}.{name}", earlier))
    return mode, tuple(conditions)


def _check_condition(name: str, node: Any, where: str, earlier: Mapping[str, str]) -> Condition:
    if not isinstance(node, dict) or not node:
        raise PatternError(f"{where}: expected an object of tests, got {_short(node)}")
    fact_type = node.get("t")
    if fact_type is None:
        raise PatternError(
            f"{where}: missing field t (the fact type, one of {', '.join(FACT_TYPES)}), "
            f"got {_short(node)}"
        )
    if fact_type not in FACT_TYPES:
        raise PatternError(
            f"{where}.t: unknown fact type (known: {', '.join(FACT_TYPES)}), got {fact_type!r}"
        )
    fact = FACT_TYPES[fact_type]
    references: list[Reference] = []
    tests: list[dict[str, Any]] = []
    for key, value in node.items():
        here = f"{where}.{key}"
        reference = _reference(key, value, here, fact, earlier)
        if reference is not None:
            references.append(reference)
        else:
            tests.append(_check_test(key, value, here, fact))
    if len(references) > 1:
        raise PatternError(
            f"{where}: at most one reference to an earlier condition per condition "
            "(durable-rules 2.0.28 crashes on a conjunction holding references), "
            f"got {len(references)}"
        )
    test = tests[0] if len(tests) == 1 else {"$and": tests}
    return Condition(name, fact_type, MappingProxyType(test), references[0] if references else None)


def _reference(
    key: str, value: Any, where: str, fact: FactType, earlier: Mapping[str, str]
) -> Reference | None:
    """The reference a top-level test makes (`{"seq": {"first": "seq"}}` or an operator
    over one), after checking it; None for a test of the fact alone."""
    if key.startswith("$"):
        if key not in COMPARISONS or not isinstance(value, dict) or len(value) != 1:
            return None
        field_name, operand = next(iter(value.items()))
        op = key
    else:
        field_name, operand, op = key, value, "$eq"
    if not isinstance(operand, dict):
        return None
    _check_field(field_name, where if op == "$eq" else f"{where}.{field_name}", fact)
    here = where if op == "$eq" else f"{where}.{field_name}"
    if len(operand) != 1:
        raise PatternError(
            f'{here}: expected a value or a reference like {{"first": "seq"}}, '
            f"got {_short(operand)}"
        )
    other, other_field = next(iter(operand.items()))
    if other not in earlier:
        raise PatternError(
            f"{here}: a reference must name a condition before this one "
            f"(known: {', '.join(earlier) or 'none'}), got {other!r}"
        )
    _check_field(other_field, f"{here}.{other}", FACT_TYPES[earlier[other]])
    return Reference(op, field_name, other, other_field)


def _check_test(key: str, value: Any, where: str, fact: FactType) -> dict[str, Any]:
    """One test of the fact alone, checked and normalized to one key per object."""
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise PatternError(f"{where}: expected a non-empty list of tests, got {_short(value)}")
        parts = []
        for index, part in enumerate(value):
            here = f"{where}[{index}]"
            if not isinstance(part, dict) or not part:
                raise PatternError(f"{here}: expected an object of tests, got {_short(part)}")
            tests = [_check_test(k, v, f"{here}.{k}", fact) for k, v in part.items()]
            parts.append(tests[0] if len(tests) == 1 else {"$and": tests})
        return {key: parts}
    if not key.startswith("$"):
        _check_field(key, where, fact)
        _check_constant(value, where)
        return {key: value}
    if key not in OPERATORS:
        raise PatternError(
            f"{where}: unknown operator (known: {', '.join(OPERATORS)}), got {key!r}"
        )
    if not isinstance(value, dict) or len(value) != 1:
        raise PatternError(
            f'{where}: expected one field and its value like {{"seq": 1}}, got {_short(value)}'
        )
    name, operand = next(iter(value.items()))
    here = f"{where}.{name}"
    _check_field(name, here, fact)
    if key in ("$ex", "$nex"):
        return {key: {name: 1}}
    if isinstance(operand, dict):
        raise PatternError(
            f"{here}: a reference to an earlier condition may only stand at the top of a "
            f"condition, got {_short(operand)}"
        )
    if key in ("$mt", "$imt"):
        if not isinstance(operand, str):
            raise PatternError(f"{here}: expected a regular expression, got {_short(operand)}")
        try:
            re.compile(operand)
        except re.error as exc:
            raise PatternError(
                f"{here}: invalid regular expression ({exc}), got {operand!r}"
            ) from None
    _check_constant(operand, here)
    return {key: {name: operand}}


def _check_field(name: Any, where: str, fact: FactType) -> None:
    if name == "t" or name in fact.fields:
        return
    raise PatternError(
        f"{where}: unknown field for a {fact.name} fact "
        f"(known: t, {', '.join(fact.fields)}), got {name!r}"
    )


def _check_constant(value: Any, where: str) -> None:
    if isinstance(value, (str, int, float)):
        return  # bool is an int
    raise PatternError(f"{where}: expected a string, number or true/false, got {_short(value)}")


def _check_template(template: str, by_name: Mapping[str, Condition]) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise PatternError(f"evidence: {exc}, got {template!r}") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        name, _, attribute = field_name.partition(".")
        condition = by_name.get(name)
        fact = FACT_TYPES[condition.fact_type] if condition else None
        if spec or conversion or fact is None or attribute not in fact.fields:
            raise PatternError(
                "evidence: expected placeholders like {later.finished_at} naming a condition "
                f"and a field of its fact, got {{{field_name}}}"
            )


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return repr(text if len(text) <= 120 else text[:117] + "...")


# ---------------------------------------------------------------------------------------
# Is the engine there?


def engine_unavailable() -> str | None:
    """None when durable-rules can be loaded here; otherwise why not, in one line."""
    try:
        importlib.import_module(ENGINE_MODULE)
    except Exception as exc:  # ImportError on 3.13 (no build); anything else is as fatal
        return (
            f"pattern rules are unavailable: durable-rules cannot be imported on Python "
            f"{platform.python_version()} ({type(exc).__name__}: {exc}); "
            "the other rule kinds are not affected"
        )
    return None


# ---------------------------------------------------------------------------------------
# The host: a worker process running the engine


@dataclass
class CaseOutcome:
    """The matches of one rule on one case (each a name → fact id map), or its error."""

    case_id: str
    matches: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None


class EngineCrashed(RuntimeError):
    """The worker process died (durable-rules' C core crashed)."""


class PatternHost:
    """Posts one rule's cases to a durable-rules worker process and collects the matches.

    1. `load` (or the first `evaluate`) compiles the rule's ruleset in a worker of its
       own: with two rulesets in one process the C core was seen corrupting one with the
       other (a crash on facts no rule wants), so each worker holds exactly one.
    2. `evaluate` sends cases in one request; the worker posts each case's facts one at
       a time with their ids as one session, collects the matches, and deletes the
       session before the next case. An exception in one case is that case's error.
    3. If the worker dies, it is restarted and the cases of the request are retried one
       per request, so the case that kills the worker is found and recorded as failed
       while the others get their verdict.
    """

    def __init__(self, ruleset: str) -> None:
        self.ruleset = ruleset
        self._process: subprocess.Popen[str] | None = None
        self._started = False
        self.restarts = 0  # workers started again after one died
        # One request at a time: a host kept by `PatternHosts` serves the passes of
        # every source, which the daemon runs on threads of their own.
        self._lock = threading.RLock()

    def __enter__(self) -> PatternHost:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs."""
        process = self._process
        return None if process is None else process.pid

    def load(self) -> str | None:
        """Start the worker and compile the ruleset; the engine's refusal, if any."""
        with self._lock:
            try:
                error = self._request({"op": "load", "ruleset": self.ruleset}).get("error")
            except EngineCrashed as exc:
                return str(exc)
            return str(error) if error else None

    def evaluate(
        self, cases: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    ) -> list[CaseOutcome]:
        """The outcome of each case (case id, facts), in order."""
        if not cases:
            return []
        with self._lock:
            try:
                return self._evaluate(cases)
            except EngineCrashed as crash:
                if len(cases) == 1:
                    return [CaseOutcome(cases[0][0], error=str(crash))]
            outcomes = []
            for case in cases:
                try:
                    outcomes += self._evaluate([case])
                except EngineCrashed as crash:
                    outcomes.append(CaseOutcome(case[0], error=str(crash)))
            return outcomes

    def _evaluate(
        self, cases: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    ) -> list[CaseOutcome]:
        if self._process is None:
            self.restarts += self._started
            error = self.load()
            if error:
                raise EngineCrashed(error)
        reply = self._request({"op": "evaluate", "cases": list(cases)})
        return [
            CaseOutcome(case_id, matches or [], error)
            for case_id, matches, error in reply["results"]
        ]

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()

    def _request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        if self._process is None:
            self._started = True
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                env={**os.environ, "PYTHONFAULTHANDLER": "", "PYTHONIOENCODING": "utf-8"},
            )
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        try:
            # ASCII on the pipe: no dependence on the worker's locale
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except OSError:
            line = ""
        if not line:
            self._close()
            raise EngineCrashed(f"durable-rules crashed (worker exit status {process.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply


class PatternHosts:
    """The pattern workers kept from one evaluation to the next, one per ruleset.

    Starting a worker (an interpreter that imports durable-rules and compiles the
    ruleset) costs ~0.05 s; a daemon's incremental cycle of 1,000 cases spent 0.11 s of
    its second starting two. A worker serves every source (one request at a time), so
    their number is that of the pattern rules, not of sources times rules. A pass holds
    the workers it uses (`using`); one retired by a rule change (`keep_only`) stops when
    the last pass using it lets go."""

    def __init__(self) -> None:
        self._hosts: dict[str, PatternHost] = {}
        self._users: dict[str, int] = {}
        self._retired: set[str] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def using(self, ruleset: str) -> Iterator[PatternHost]:
        with self._lock:
            host = self._hosts.setdefault(ruleset, PatternHost(ruleset))
            self._users[ruleset] = self._users.get(ruleset, 0) + 1
            self._retired.discard(ruleset)  # wanted again (a rule file changed back)
        try:
            yield host
        finally:
            with self._lock:
                self._users[ruleset] -= 1
                done = not self._users[ruleset] and ruleset in self._retired
                if done:
                    self._retired.discard(ruleset)
                    del self._hosts[ruleset], self._users[ruleset]
            if done:
                host.close()

    def keep_only(self, rulesets: Iterable[str]) -> None:
        """Stop the workers of rulesets no longer in use (a rule file changed): now if
        no pass holds them, else when the last one lets go."""
        wanted = set(rulesets)
        gone = []
        with self._lock:
            for ruleset in [r for r in self._hosts if r not in wanted]:
                if self._users.get(ruleset):
                    self._retired.add(ruleset)
                else:
                    gone.append(self._hosts.pop(ruleset))
                    self._users.pop(ruleset, None)
        for host in gone:
            host.close()

    def close(self) -> None:
        self.keep_only(())


# ---------------------------------------------------------------------------------------
# The worker (python -m watchdog.engine.patterns): the only place the engine is loaded


def _serve(requests: IO[str], replies: IO[str]) -> None:
    engine = importlib.import_module(ENGINE_MODULE)
    ruleset, created = "", 0
    handle: Any = None
    for line in requests:
        request = json.loads(line)
        reply: dict[str, Any] = {}
        if request["op"] == "load":
            ruleset, created = request["ruleset"], created + 1
            try:
                handle = engine.create_ruleset(f"pattern{created}", ruleset)
            except Exception as exc:
                reply = {"error": f"durable-rules refused the ruleset: {exc}"}
        else:
            results = []
            for case_id, facts in request["cases"]:
                outcome = _run_case(engine, handle, facts)
                results.append([case_id, *outcome])
                if outcome[1] is not None:
                    # the session may hold the failed case's facts: start from a new ruleset
                    created += 1
                    with contextlib.suppress(Exception):
                        engine.delete_ruleset(handle)
                    handle = engine.create_ruleset(f"pattern{created}", ruleset)
            reply = {"results": results}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def _run_case(engine: Any, handle: int, facts: list[dict[str, Any]]) -> tuple[Any, str | None]:
    """One case: post its facts one by one with their ids (the batch call crashes), run
    the matches, then retract the facts, which leaves the session empty for the next
    case. Every case uses the same session: `delete_state` crashes the C core (free():
    invalid pointer) on a session holding a partial match, and sessions left alive run
    into a MemoryError at the 1,025th."""
    matches: list[dict[str, str]] = []
    posted: list[str] = []
    try:
        for one in facts:
            one["sid"] = SESSION
            text = json.dumps(one, ensure_ascii=False)
            code, state = engine.assert_fact(handle, text)
            if code != 0:
                continue  # 1: no rule wants it; 2: already seen (ids are unique per case)
            posted.append(text)
            result = engine.start_action_for_state(handle, state)
            while result:
                for found in json.loads(result[1]).values():
                    matches.append({name: fact_["id"] for name, fact_ in found.items()})
                following = engine.complete_and_start_action(handle, state)
                result = (None, following) if following else None
        for text in posted:
            engine.retract_fact(handle, text)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return matches, None


if __name__ == "__main__":
    _serve(sys.stdin, sys.stdout)
