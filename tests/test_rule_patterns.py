"""Pattern rules (event correlation within one case) on durable-rules, with hand-made cases.

The shipped rules (rules/patterns.toml): `one-time-notice` (two supplement notices on one
case, 一次告知 broken) and `fee-on-refusal` (a fee charged on a refused case).
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select

from watchdog.app import Watchdog
from watchdog.cli import main
from watchdog.config import load_settings
from watchdog.engine.evaluate import EvaluationPass, EvaluationResult
from watchdog.engine.pattern_rules import evaluate_pattern_rules
from watchdog.engine.patterns import PatternHost, PatternHosts, PatternParams, compile_pattern
from watchdog.engine.rulefiles import RuleSpec, load_rules
from watchdog.store import schema

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
AS_OF = datetime(2026, 6, 30, 18, tzinfo=SHANGHAI)
SOURCE = "county"


@pytest.fixture(scope="module")
def rules() -> tuple[RuleSpec, ...]:
    loaded = load_rules(ROOT / "rules")
    assert loaded.problems == ()
    return loaded.of_kind("pattern")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


class County:
    """Hand-made rows in the store, each write with the poll number it came with."""

    def __init__(self, store: Engine) -> None:
        self.store = store

    def case(self, case_id: str, seq: int = 1, **values: Any) -> None:
        row = {
            "source": SOURCE,
            "case_id": case_id,
            "matter_code": "371331004-QR-001",
            "matter_name": "不动产首次登记",
            "dept_code": "371331004",
            "dept_name": "东阳县自然资源和规划局",
            "accepted_at": at("2026-03-02 09:00"),
            "promised_limit": 5,
            "limit_unit": "W",
            "updated_at": at("2026-03-02 09:00"),
            "change_seq": seq,
            **values,
        }
        self._insert(schema.cases, [row])

    def steps(self, case_id: str, *steps: tuple[str, str, str], seq: int = 1) -> None:
        """(step id, step code, finished at)."""
        rows = [
            {
                "source": SOURCE,
                "step_id": step_id,
                "case_id": case_id,
                "step_code": code,
                "step_name": {"supplement_notice": "补正告知"}.get(code, code),
                "handler_id": "王芳",
                "finished_at": at(finished),
                "updated_at": at(finished),
                "change_seq": seq,
            }
            for step_id, code, finished in steps
        ]
        self._insert(schema.steps, rows)

    def fee(self, case_id: str, fee_id: str, charged: str, amount: str = "80.00") -> None:
        row = {
            "source": SOURCE,
            "fee_id": fee_id,
            "case_id": case_id,
            "fee_code": "FS-001",
            "fee_name": "不动产登记费(住宅)",
            "amount": Decimal(amount),
            "charged_at": at(charged),
            "updated_at": at(charged),
            "change_seq": 1,
        }
        self._insert(schema.fees, [row])

    def _insert(self, table: Any, rows: list[dict[str, Any]]) -> None:
        with self.store.begin() as connection:
            connection.execute(insert(table), rows)


@pytest.fixture
def county(store: Engine) -> County:
    return County(store)


def evaluate(
    store: Engine,
    rules: Sequence[RuleSpec],
    *,
    record: bool = False,
    since: int | None = None,
    as_of: datetime = AS_OF,
) -> EvaluationResult:
    last = None if since is None else as_of - timedelta(days=1)
    run = EvaluationPass(store, SOURCE, SHANGHAI, as_of, record, since=since, last=last)
    return evaluate_pattern_rules(run, rules)


def found(result: EvaluationResult) -> set[tuple[str, str | None, str | None, str]]:
    return {(f.finding, f.case_id, f.subject, f.severity.value) for f in result.findings}


def open_violations(store: Engine) -> set[tuple[str, str | None, str | None]]:
    table = schema.violations
    query = select(table.c.rule_id, table.c.case_id, table.c.subject).where(
        table.c.kind == "pattern", table.c.state == "open"
    )
    with store.connect() as connection:
        return {(r.rule_id, r.case_id, r.subject) for r in connection.execute(query)}


NOTICE = "supplement_notice"


# --- the shipped rules on hand-made cases ---------------------------------------------------


def test_two_supplement_notices_on_one_case_are_one_finding_about_the_later_one(
    county: County, store: Engine, rules: tuple[RuleSpec, ...]
) -> None:
    county.case("C-2")
    county.steps("C-2", ("C-2-1", "accept", "2026-03-02 09:00"))
    county.steps(
        "C-2", ("C-2-2", NOTICE, "2026-03-03 10:00"), ("C-2-3", NOTICE, "2026-03-10 15:30")
    )
    result = evaluate(store, rules)
    assert found(result) == {("repeated_supplement_notice", "C-2", "C-2-3", "yellow")}
    [finding] = result.findings
    assert (finding.rule_id, finding.kind, finding.dept_code) == (
        "one-time-notice",
        "pattern",
        "371331004",
    )
    assert finding.evidence["description"] == (
        "该办件已于 2026-03-03 10:00 发出补正告知（C-2-2），又于 2026-03-10 15:30 再次发出"
        "补正告知（C-2-3），未做到一次性告知需要补正的全部内容。"
    )
    assert finding.evidence["matched"]["later"]["step_id"] == "C-2-3"
    assert result.rules["one-time-notice"].failed == 0


def test_one_supplement_notice_is_no_finding_and_three_are_two(
    county: County, store: Engine, rules: tuple[RuleSpec, ...]
) -> None:
    county.case("C-1")
    county.steps("C-1", ("C-1-1", NOTICE, "2026-03-03 10:00"), ("C-1-2", "review", "2026-03-04"))
    county.case("C-3")
    county.steps(
        "C-3",
        ("C-3-1", NOTICE, "2026-03-03 10:00"),
        ("C-3-2", NOTICE, "2026-03-05 10:00"),
        ("C-3-3", NOTICE, "2026-03-09 10:00"),
    )
    assert found(evaluate(store, rules)) == {
        ("repeated_supplement_notice", "C-3", "C-3-2", "yellow"),
        ("repeated_supplement_notice", "C-3", "C-3-3", "yellow"),
    }


def test_two_notices_with_the_same_timestamp_are_ordered_by_step_id(
    county: County, store: Engine, rules: tuple[RuleSpec, ...]
) -> None:
    county.case("C-5")
    county.steps(
        "C-5", ("C-5-b", NOTICE, "2026-03-03 10:00"), ("C-5-a", NOTICE, "2026-03-03 10:00")
    )
    assert found(evaluate(store, rules)) == {
        ("repeated_supplement_notice", "C-5", "C-5-b", "yellow")
    }


def test_a_fee_on_a_refused_case_is_a_red_finding_and_on_an_approved_case_none(
    county: County, store: Engine, rules: tuple[RuleSpec, ...]
) -> None:
    county.case("R-1", result="2", completed_at=at("2026-03-09 16:00"))
    county.fee("R-1", "R-1-F1", "2026-03-09 15:50")
    county.case("R-2", result="不予受理", completed_at=at("2026-03-09 16:00"))
    county.fee("R-2", "R-2-F1", "2026-03-09 15:50")
    county.fee("R-2", "R-2-F2", "2026-03-09 15:55", amount="10.00")
    county.case("A-1", result="1", completed_at=at("2026-03-09 16:00"))
    county.fee("A-1", "A-1-F1", "2026-03-09 15:50")
    county.case("R-3", result="2", completed_at=at("2026-03-09 16:00"))  # refused, no fee
    result = evaluate(store, rules)
    assert found(result) == {
        ("fee_on_refusal", "R-1", "R-1-F1", "red"),
        ("fee_on_refusal", "R-2", "R-2-F1", "red"),
        ("fee_on_refusal", "R-2", "R-2-F2", "red"),
    }
    by_subject = {f.subject: f for f in result.findings}
    assert by_subject["R-1-F1"].evidence["description"] == (
        "该办件办理结果为不予许可/不予受理（结果代码 2，2026-03-09 16:00 办结），"
        "却于 2026-03-09 15:50 收取 不动产登记费(住宅)（FS-001）80.00 元。"
    )


def test_events_after_the_instant_have_not_happened_yet(
    county: County, store: Engine, rules: tuple[RuleSpec, ...]
) -> None:
    county.case("L-1")
    county.steps("L-1", ("L-1-1", NOTICE, "2026-06-01 10:00"), ("L-1-2", NOTICE, "2026-07-02"))
    county.case("L-2", result="2", completed_at=at("2026-07-01 09:00"))  # decided later
    county.fee("L-2", "L-2-F1", "2026-06-29 10:00")
    assert found(evaluate(store, rules)) == set()
    later = evaluate(store, rules, as_of=at("2026-07-03 09:00"))
    assert {(f.case_id, f.subject) for f in later.findings} == {
        ("L-1", "L-1-2"),
        ("L-2", "L-2-F1"),
    }


def test_a_case_whose_second_notice_arrives_later_gets_its_finding_in_the_next_pass(
    county: County, store: Engine, rules: tuple[RuleSpec, ...]
) -> None:
    county.case("I-1")
    county.steps("I-1", ("I-1-1", NOTICE, "2026-03-03 10:00"))
    county.case("I-2", completed_at=at("2026-03-20 10:00"), result="1")
    county.steps("I-2", ("I-2-1", NOTICE, "2026-03-03 10:00"), ("I-2-2", NOTICE, "2026-03-04"))
    first = evaluate(store, rules, record=True)
    assert first.counts.opened == 1
    assert open_violations(store) == {("one-time-notice", "I-2", "I-2-2")}

    # The next poll (2) brings I-1's second notice; I-2, completed and unchanged, is not
    # looked at again and keeps its violation.
    county.steps("I-1", ("I-1-2", NOTICE, "2026-06-29 11:00"), seq=2)
    second = evaluate(store, rules, record=True, since=1)
    assert second.cases_evaluated == 1
    assert second.counts.opened == 1 and second.counts.resolved == 0
    assert open_violations(store) == {
        ("one-time-notice", "I-1", "I-1-2"),
        ("one-time-notice", "I-2", "I-2-2"),
    }


def test_more_than_a_thousand_and_twenty_four_cases_pass_in_one_run(
    store: Engine, rules: tuple[RuleSpec, ...]
) -> None:
    """durable-rules raises MemoryError at its 1,025th live session: every case must be
    cleared before the next."""
    cases, steps = [], []
    for n in range(1_100):
        case_id = f"M-{n:04d}"
        cases.append(
            {
                "source": SOURCE,
                "case_id": case_id,
                "dept_code": "371331004",
                "promised_limit": 5,
                "limit_unit": "W",
                "updated_at": AS_OF,
                "change_seq": 1,
            }
        )
        for k in range(2):
            moment = at("2026-03-03 10:00") + timedelta(days=k)
            steps.append(
                {
                    "source": SOURCE,
                    "step_id": f"{case_id}-{k}",
                    "case_id": case_id,
                    "step_code": NOTICE,
                    "finished_at": moment,
                    "updated_at": moment,
                    "change_seq": 1,
                }
            )
    with store.begin() as connection:
        connection.execute(insert(schema.cases), cases)
        connection.execute(insert(schema.steps), steps)
    result = evaluate(store, rules)
    assert result.cases_evaluated == 1_100
    assert len(result.findings) == 1_100
    assert {f.subject for f in result.findings} == {f"M-{n:04d}-1" for n in range(1_100)}
    assert result.rules["one-time-notice"].failed == 0


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's numeric(14,2) holds no Infinity
def test_a_case_the_engine_fails_on_keeps_its_violations_and_the_others_are_judged(
    county: County, store: Engine, rules: tuple[RuleSpec, ...]
) -> None:
    for case_id in ("R-1", "R-2"):
        county.case(case_id, result="2", completed_at=at("2026-03-09 16:00"))
        county.fee(case_id, f"{case_id}-F1", "2026-03-09 15:50")
    assert evaluate(store, rules, record=True).counts.opened == 2

    # Poll 2 changes both fees; R-1's amount is one durable-rules' parser refuses.
    with store.begin() as connection:
        fees = schema.fees
        for fee_id, amount in (("R-1-F1", "Infinity"), ("R-2-F1", "90.00")):
            connection.execute(
                fees.update()
                .where(fees.c.fee_id == fee_id)
                .values(amount=Decimal(amount), change_seq=2)
            )
    result = evaluate(store, rules, record=True, since=1)
    stats = result.rules["fee-on-refusal"]
    assert (stats.applied, stats.failed) == (2, 1)
    assert stats.first_error == (
        "case R-1: PatternCaseError: error: Could not assert fact, error code: 202"
    )
    assert {(f.case_id, f.subject) for f in result.findings} == {("R-2", "R-2-F1")}
    assert result.counts.resolved == 0  # R-1 was not judged: its violation stays
    assert open_violations(store) == {
        ("fee-on-refusal", "R-1", "R-1-F1"),
        ("fee-on-refusal", "R-2", "R-2-F1"),
    }


def test_a_rule_on_pauses_sees_a_pause_that_alone_changed_in_the_next_pass(
    county: County, store: Engine, tmp_path: Path
) -> None:
    """A rule of the office's own over pauses, met by either of two conditions (any)."""
    when = (
        '{"any": [{"review": {"t": "pause", "kind": "expert_review", "$gt": '
        '{"granted_days": 20}}}, {"long": {"t": "pause", "kind": "hearing", "$ex": '
        '{"ended_at": 1}}}]}'
    )
    folder = pattern_file(tmp_path, params(when, finding="long_pause", severity="red"))
    loaded = load_rules(folder)
    assert loaded.problems == ()
    county.case("P-1", completed_at=at("2026-04-01 10:00"), result="1")
    assert evaluate(store, loaded.rules, record=True).counts.opened == 0

    with store.begin() as connection:
        connection.execute(
            insert(schema.pauses),
            [
                {
                    "source": SOURCE,
                    "pause_id": "P-1-T1",
                    "case_id": "P-1",
                    "kind": "hearing",
                    "started_at": at("2026-03-05 09:00"),
                    "ended_at": at("2026-03-20 09:00"),
                    "updated_at": at("2026-03-20 09:00"),
                    "change_seq": 2,
                }
            ],
        )
    result = evaluate(store, loaded.rules, record=True, since=1)
    assert found(result) == {("long_pause", "P-1", "P-1-T1", "red")}
    assert open_violations(store) == {("p1", "P-1", "P-1-T1")}


# --- the host: failures stay with their case ------------------------------------------------

PAIR = compile_pattern(
    PatternParams(
        finding="pair",
        when='{"all": [{"a": {"t": "fee"}}, '
        '{"b": {"t": "fee", "$gt": {"amount": {"a": "amount"}}}}]}',
    )
)


def fees(*amounts: float) -> list[dict[str, Any]]:
    facts = [{"id": f"fee:F{n}", "t": "fee", "amount": a} for n, a in enumerate(amounts)]
    return PAIR.engine_facts(facts)


def test_an_engine_error_on_one_case_is_that_cases_and_the_next_case_is_judged() -> None:
    with PatternHost(PAIR.ruleset) as host:
        assert host.load() is None
        # durable-rules' parser refuses Infinity (error 202)
        outcomes = host.evaluate([("C1", fees(1.0, float("inf"))), ("C2", fees(1.0, 2.0))])
    assert [(o.case_id, o.matches) for o in outcomes] == [
        ("C1", []),
        ("C2", [{"a": "fee:F0", "b": "fee:F1"}]),
    ]
    assert outcomes[0].error == "error: Could not assert fact, error code: 202"
    assert outcomes[1].error is None


def test_a_worker_that_dies_is_restarted_and_the_cases_are_judged_again() -> None:
    with PatternHost(PAIR.ruleset) as host:
        assert host.load() is None
        assert host._process is not None
        os.kill(host._process.pid, signal.SIGSEGV)  # as the C core does when it crashes
        host._process.wait()
        outcomes = host.evaluate([("C1", fees(1.0, 2.0)), ("C2", fees(3.0, 2.0))])
        assert host.restarts == 1
    assert [(o.case_id, o.matches, o.error) for o in outcomes] == [
        ("C1", [{"a": "fee:F0", "b": "fee:F1"}], None),
        ("C2", [{"a": "fee:F1", "b": "fee:F0"}], None),
    ]


def test_a_refused_ruleset_is_the_load_error() -> None:
    with PatternHost('{"match": {"all": "not a list"}}') as host:
        assert (
            host.load()
            == "durable-rules refused the ruleset: Could not create ruleset, error code: 204"
        )


# --- rule files -----------------------------------------------------------------------------

GOOD_WHEN = '{"all": [{"case": {"t": "case", "result": "2"}}, {"fee": {"t": "fee"}}]}'


def pattern_file(tmp_path: Path, body: str, extra: str = "") -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "p.toml").write_text(
        f"""
[[rules]]
id = "p1"
kind = "pattern"
title = "测试"
basis = "测试依据"
{extra}
[rules.params]
{body}
""",
        encoding="utf-8",
    )
    return folder


def params(when: str, finding: str = "x", **others: str) -> str:
    """A [rules.params] body: the condition as a literal string, the others quoted."""
    lines = [f"finding = {finding!r}", f"when = '''{when}'''"]
    return "\n".join([*lines, *(f"{key} = {value!r}" for key, value in others.items())])


FEE_REF_B = '{"all": [{"a": {"t": "fee", "$gt": {"amount": {"b": "amount"}}}}]}'
TWO_REFS = (
    '{"all": [{"a": {"t": "step"}}, {"b": {"t": "step", "$gt": {"seq": {"a": "seq"}}, '
    '"handler_id": {"a": "handler_id"}}}]}'
)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            params('{"all": [{"a": {"t": "steps"}}]}'),
            "p.toml: rules[0].params: when.all[0].a.t: unknown fact type "
            "(known: case, step, fee, pause), got 'steps'",
        ),
        (
            params('{"all": [{"a": {"t": "fee", "$gtt": {"amount": 1}}}]}'),
            "p.toml: rules[0].params: when.all[0].a.$gtt: unknown operator "
            "(known: $and, $or, $lt, $lte, $gt, $gte, $neq, $mt, $imt, $ex, $nex), got '$gtt'",
        ),
        (
            params('{"all": [{"a": {"fee_code": "FS-001"}}]}'),
            "p.toml: rules[0].params: when.all[0].a: missing field t (the fact type, one of "
            'case, step, fee, pause), got \'{"fee_code": "FS-001"}\'',
        ),
        (
            params('{"all": [{"a": {"t": "step", "step_cod": "x"}}]}'),
            "p.toml: rules[0].params: when.all[0].a.step_cod: unknown field for a step fact "
            "(known: t, step_id, step_code, step_name, handler_id, finished_at, result, seq), "
            "got 'step_cod'",
        ),
        (
            params(FEE_REF_B),
            "p.toml: rules[0].params: when.all[0].a.$gt.amount: a reference must name a "
            "condition before this one (known: none), got 'b'",
        ),
        (
            params(TWO_REFS),
            "p.toml: rules[0].params: when.all[1].b: at most one reference to an earlier "
            "condition per condition (durable-rules 2.0.28 crashes on a conjunction holding "
            "references), got 2",
        ),
        (
            params('{"all": ['),
            "p.toml: rules[0].params: when: invalid JSON (Expecting value: line 1 column 10 "
            "(char 9)), got '{\"all\": ['",
        ),
        (
            params(GOOD_WHEN, finding="Bad Code"),
            "p.toml: rules[0].params: finding: expected a lower-case code like repeated_notice, "
            "got 'Bad Code'",
        ),
        (
            params(GOOD_WHEN, severity="orange"),
            "p.toml: rules[0].params: severity: expected warning, yellow or red, got 'orange'",
        ),
        (
            params(GOOD_WHEN, subject="payment"),
            "p.toml: rules[0].params: subject: not a name in when (names: case, fee), "
            "got 'payment'",
        ),
        (
            params(GOOD_WHEN, evidence="收取 {fee.price} 元"),
            "p.toml: rules[0].params: evidence: expected placeholders like "
            "{later.finished_at} naming a condition and a field of its fact, got {fee.price}",
        ),
        (
            f"when = '''{GOOD_WHEN}'''",
            "p.toml: rules[0].params.finding: is required",
        ),
    ],
)
def test_a_broken_pattern_rule_is_one_line_naming_file_key_and_value(
    tmp_path: Path, body: str, problem: str
) -> None:
    loaded = load_rules(pattern_file(tmp_path, body))
    assert loaded.problems == (problem,)
    assert loaded.rules == ()


def test_a_pattern_rule_grades_its_finding_in_params_not_in_a_severity_table(
    tmp_path: Path,
) -> None:
    folder = pattern_file(tmp_path, params(GOOD_WHEN), '[rules.severity]\nx = "red"\n')
    assert load_rules(folder).problems == (
        "p.toml: rules[0].severity.x: unknown finding "
        "(known: none: a pattern rule grades its finding with params.severity)",
    )


def test_rules_check_passes_the_shipped_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(ROOT / "rules")]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "",
        f"7 rule(s) loaded from {ROOT / 'rules'}, 0 problem(s)\n",
    )


# --- without durable-rules (Python 3.13) ----------------------------------------------------


class _NoDurableRules(importlib.abc.MetaPathFinder):
    """Imports as on Python 3.13, where durable-rules does not build: not installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "durable_rules_engine" or name.split(".", maxsplit=1)[0] == "durable":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@pytest.fixture
def without_durable_rules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in sys.modules if n == "durable_rules_engine" or n.startswith("durable")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoDurableRules(), *sys.meta_path])
    yield


UNAVAILABLE = (
    "pattern rules are unavailable: durable-rules cannot be imported on Python {version} "
    "(ModuleNotFoundError: No module named 'durable_rules_engine'); the other rule kinds "
    "are not affected"
)


def test_without_the_engine_pattern_rules_are_reported_unavailable_and_the_rest_loads(
    without_durable_rules: None, capsys: pytest.CaptureFixture[str]
) -> None:
    message = UNAVAILABLE.format(version=".".join(map(str, sys.version_info[:3])))
    loaded = load_rules(ROOT / "rules")
    assert loaded.problems == (
        f"patterns.toml: rules[0].params: {message}",
        f"patterns.toml: rules[1].params: {message}",
    )
    assert {rule.kind for rule in loaded.rules} == {
        "overdue",
        "procedure",
        "fee",
        "inspection",
        "data_altered",
    }

    assert main(["rules", "check", str(ROOT / "rules")]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{ROOT / 'rules'}/patterns.toml: rules[0].params: {message}",
        f"{ROOT / 'rules'}/patterns.toml: rules[1].params: {message}",
    ]


def test_without_the_engine_the_daemon_logs_it_and_evaluates_the_other_kinds(
    without_durable_rules: None,
    store: Engine,
    store_url: str,
    tmp_path: Path,
    county: County,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copy(ROOT / "calendar.toml", tmp_path / "calendar.toml")
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/watchdog.db"', f'url = "{store_url}"')
    text = text.replace('name = "demo"', f'name = "{SOURCE}"')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    county.case("C-9", accepted_at=at("2026-03-02 09:00"))  # open since March: red overdue
    county.steps("C-9", ("C-9-1", NOTICE, "2026-03-03"), ("C-9-2", NOTICE, "2026-03-04"))
    with caplog.at_level(logging.ERROR, logger="watchdog.app"):
        watchdog = Watchdog(load_settings(tmp_path / "config.toml"), store)
    assert "rule file skipped: patterns.toml: rules[0].params: pattern rules are unavailable" in (
        caplog.text
    )
    result = watchdog.evaluate(SOURCE, AS_OF, record=False)
    watchdog.close()
    assert result.errors == []
    assert {(f.kind, f.case_id) for f in result.findings} == {("overdue", "C-9")}


def test_a_pass_that_meets_a_pattern_rule_without_the_engine_says_so_once(
    rules: tuple[RuleSpec, ...], without_durable_rules: None, store: Engine, county: County
) -> None:
    county.case("C-1")
    county.steps("C-1", ("C-1-1", NOTICE, "2026-03-03"), ("C-1-2", NOTICE, "2026-03-04"))
    result = evaluate(store, rules)
    assert result.findings == []
    assert result.errors == [UNAVAILABLE.format(version=".".join(map(str, sys.version_info[:3])))]


def test_pattern_workers_kept_between_passes_serve_the_next_one_and_stop_when_replaced(
    county: County, store: Engine, rules: tuple[RuleSpec, ...]
) -> None:
    county.case("K-1", completed_at=at("2026-03-20 10:00"), result="1")
    county.steps("K-1", ("K-1-1", NOTICE, "2026-03-03 10:00"), ("K-1-2", NOTICE, "2026-03-04"))
    kept = PatternHosts()
    try:
        run = EvaluationPass(store, SOURCE, SHANGHAI, AS_OF, False, pattern_hosts=kept)
        first = evaluate_pattern_rules(run, rules)
        assert {(f.finding, f.case_id, f.subject) for f in first.findings} == {
            ("repeated_supplement_notice", "K-1", "K-1-2")
        }
        ruleset = next(r for r in rules if r.id == "one-time-notice").prepared.ruleset
        with kept.using(ruleset) as host:
            worker = host.pid
        assert worker is not None  # still running after the pass
        second = evaluate_pattern_rules(run, rules)
        assert {f.case_id for f in second.findings} == {"K-1"}
        with kept.using(ruleset) as host:
            assert host.pid == worker  # the same worker judged the second pass
            kept.keep_only([])  # the rule files changed while a pass still uses it
            assert host.pid == worker  # not stopped under the pass
        assert host.pid is None  # stopped when the pass let go
    finally:
        kept.close()
