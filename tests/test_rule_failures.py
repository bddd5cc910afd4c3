"""A rule that raises on one case is recorded with the case and the others go on; a
rule that fails on every case is disabled until its file changes."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from watchdog.app import Watchdog
from watchdog.config import load_settings
from watchdog.demo import generate_demo_source
from watchdog.engine import case_rules
from watchdog.engine.procedure import check_procedure
from watchdog.store import schema

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 9, 30, 18, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def watchdog(store: Engine, store_url: str, tmp_path: Path) -> Watchdog:
    generate_demo_source(tmp_path / "var" / "demo-source.db", cases=600, seed=11)
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copy(ROOT / "calendar.toml", tmp_path / "calendar.toml")
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/watchdog.db"', f'url = "{store_url}"')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    return Watchdog(load_settings(tmp_path / "config.toml"), store, clock=lambda: NOW)


def open_violations(store: Engine, rule_id: str) -> set[str]:
    table = schema.violations
    with store.connect() as connection:
        return set(
            connection.scalars(
                select(table.c.fingerprint).where(
                    table.c.rule_id == rule_id, table.c.state == "open"
                )
            )
        )


def test_a_rule_failing_on_one_case_keeps_that_case_as_it_was(
    watchdog: Watchdog, store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert watchdog.run_cycle("demo").error is None
    before = open_violations(store, "procedure")
    table = schema.violations
    with store.connect() as connection:
        victim = connection.scalar(
            select(func.min(table.c.case_id)).where(table.c.rule_id == "procedure")
        )
    assert victim is not None and before

    def fails_on_victim(template, accepted_at, steps, as_of):
        if any(step.step_id.startswith(victim) for step in steps):
            raise ZeroDivisionError("bad step data")
        return check_procedure(template, accepted_at, steps, as_of)

    monkeypatch.setattr(case_rules, "check_procedure", fails_on_victim)
    report = watchdog.evaluate("demo", NOW, record=True, full=True)
    stats = report.rules["procedure"]
    assert stats.failed == 1 and stats.applied == 600
    assert stats.first_error == f"case {victim}: ZeroDivisionError: bad step data"
    assert not report.errors  # the pass itself went on
    assert open_violations(store, "procedure") == before  # the victim's were not resolved
    assert "procedure" not in watchdog.disabled_rules
    assert report.rules["fees"].failed == 0


def test_a_rule_failing_on_every_case_is_disabled_until_its_file_changes(
    watchdog: Watchdog,
    store: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def always_fails(template, accepted_at, steps, as_of):
        raise KeyError("review")

    monkeypatch.setattr(case_rules, "check_procedure", always_fails)
    with caplog.at_level(logging.ERROR):
        report = watchdog.run_cycle("demo")
    assert report.error is None and report.evaluation is not None
    assert report.evaluation.rules["procedure"].failed == 600
    assert "rules failed on 600 case(s)" in report.summary()
    assert watchdog.disabled_rules == {"procedure": "procedure.toml"}
    assert any(
        'rule "procedure" disabled: it failed on all 600 cases' in r.message for r in caplog.records
    )
    # The other rules recorded their violations.
    assert open_violations(store, "fees") and open_violations(store, "overdue")
    assert not open_violations(store, "procedure")

    # Disabled: the next cycle does not run it at all.
    report = watchdog.run_cycle("demo")
    assert report.evaluation is not None and "procedure" not in report.evaluation.rules

    # Fixed file: the rule runs again (a full pass, since the rules changed).
    monkeypatch.undo()
    rule_file = watchdog.settings.rules_dir / "procedure.toml"
    rule_file.write_text(rule_file.read_text(encoding="utf-8") + "\n# fixed\n", encoding="utf-8")
    report = watchdog.run_cycle("demo")
    assert watchdog.disabled_rules == {}
    assert report.evaluation is not None and report.evaluation.rules["procedure"].failed == 0
    assert open_violations(store, "procedure")


def refuse_violations_of_kind(store: Engine, kind: str) -> None:
    """A trigger in the store that refuses to insert violations of one rule kind."""
    with store.begin() as connection:
        if store.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse_kind() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.kind = '{kind}' THEN RAISE EXCEPTION 'refused {kind}'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON violations "
                "FOR EACH ROW EXECUTE FUNCTION refuse_kind()"
            )
        else:
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON violations WHEN NEW.kind = '{kind}' "
                f"BEGIN SELECT RAISE(ABORT, 'refused {kind}'); END"
            )


def test_the_store_refusing_one_kinds_violations_does_not_hold_back_the_others(
    watchdog: Watchdog, store: Engine
) -> None:
    # One stream of cases records every kind's verdicts in one transaction per chunk: a
    # kind the store refuses fails alone, and the others are recorded as before.
    watchdog.poll("demo")
    refuse_violations_of_kind(store, "pattern")
    report = watchdog.evaluate("demo", NOW, record=True, full=True)
    assert len(report.errors) == 1
    assert report.errors[0].startswith("pattern rules: ") and "refused pattern" in report.errors[0]
    assert open_violations(store, "overdue") and open_violations(store, "procedure")
    table = schema.violations
    with store.connect() as connection:
        kinds = set(connection.scalars(select(table.c.kind).distinct()))
    assert "pattern" not in kinds and {"overdue", "procedure", "fee"} <= kinds
