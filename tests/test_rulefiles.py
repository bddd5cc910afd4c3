"""Rule files: the shipped county rule set, and one precise line per broken file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from watchdog.clock import Severity
from watchdog.engine.fees import FeeCatalogue
from watchdog.engine.kinds import ProcedureTemplates
from watchdog.engine.rulefiles import load_rules

ROOT = Path(__file__).resolve().parent.parent
BROKEN = Path(__file__).parent / "fixtures" / "rules_broken"


def test_the_shipped_rules_load_without_problems() -> None:
    rules = load_rules(ROOT / "rules")
    assert rules.problems == ()
    assert sorted((r.id, r.kind) for r in rules.rules) == [
        ("data-altered", "data_altered"),
        ("fee-on-refusal", "pattern"),
        ("fees", "fee"),
        ("one-time-notice", "pattern"),
        ("overdue", "overdue"),
        ("procedure", "procedure"),
        ("repeat-inspection", "inspection"),
    ]
    (procedure,) = rules.of_kind("procedure")
    assert isinstance(procedure.prepared, ProcedureTemplates)
    assert procedure.prepared.for_matter("unknown-matter").steps == (
        "accept",
        "review",
        "decide",
        "complete",
    )
    (fees,) = rules.of_kind("fee")
    assert isinstance(fees.prepared, FeeCatalogue)
    assert fees.severity_of("not_applicable") == Severity.YELLOW
    assert fees.severity_of("over_standard") == Severity.RED
    assert fees.in_force(date(2026, 6, 30))
    assert set(rules.digests) == {
        "data_altered.toml",
        "fees.toml",
        "inspections.toml",
        "overdue.toml",
        "patterns.toml",
        "procedure.toml",
    }


def test_each_broken_file_gives_one_precise_line_and_the_good_ones_still_load() -> None:
    rules = load_rules(BROKEN)
    assert list(rules.problems) == [
        "a_unknown_kind.toml: rules[0].kind: unknown kind 'overtime' "
        "(known: overdue, procedure, fee, inspection, pattern, data_altered)",
        "b_unknown_param.toml: rules[0].params.window: unknown parameter for kind 'inspection'",
        "c_missing_param.toml: rules[0].params.catalogue: is required",
        "d_bad_type.toml: rules[0].params.warning_days: expected an integer, got 'two'",
        "e_unknown_step.toml: rules[0].params: data/bad_procedures.toml: "
        "templates.general.steps: unknown step 'approve'",
        "f_overlap.toml: rules[0].params: data/overlapping_catalogue.toml: fee code 'FS-001' "
        "has overlapping catalogue entries: 2020-01-01..2024-12-31 and 2024-06-01..open",
        "g_good.toml: rules: duplicate id 'a-good-rule' (also in g_duplicate_id.toml)",
        "h_bad_severity.toml: rules[0].severity.over_standard: expected warning, yellow or red, "
        "got 'orange'",
        "i_invalid_window.toml: rules[0].params.window_days: must be at least 0, got -3",
        "j_invalid_toml.toml: invalid TOML: Invalid value (at line 3, column 8)",
    ]
    assert [r.id for r in rules.rules] == ["a-good-rule"]


def test_a_rule_outside_its_dates_is_not_in_force(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    path = tmp_path / "rules" / "overdue.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("in_force_from = 2020-01-01", "in_force_from = 2027-01-01"), encoding="utf-8"
    )
    (overdue,) = load_rules(tmp_path / "rules").of_kind("overdue")
    assert not overdue.in_force(date(2026, 12, 31))
    assert overdue.in_force(date(2027, 1, 1))


def check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "rules", "check", str(folder)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_rules_check_exits_zero_on_the_shipped_rules_and_one_on_broken_files() -> None:
    good = check(ROOT / "rules")
    assert (good.returncode, good.stdout) == (0, "")
    broken = check(BROKEN)
    assert broken.returncode == 1
    assert len(broken.stdout.splitlines()) == 10
    assert broken.stdout.splitlines()[0].startswith(f"{BROKEN}/a_unknown_kind.toml: rules[0].kind")
