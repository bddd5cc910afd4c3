"""config.toml: validated on load, every problem named by file, key and value."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from watchdog.config import ConfigError, load_settings, parse_duration

MINIMAL_SOURCE = """
[[sources]]
name = "county"
url = "sqlite:///source.db"
[sources.queries]
cases = "SELECT * FROM cases"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return caught.value.problems


def test_the_shipped_config_loads_and_names_the_demo_source() -> None:
    settings = load_settings(Path(__file__).parent.parent / "config.toml")
    assert [s.name for s in settings.sources] == ["demo"]
    demo = settings.sources[0]
    assert set(demo.queries) == {"cases", "steps", "pauses", "fees", "inspections"}
    assert demo.poll_interval == timedelta(seconds=60)
    assert settings.store_url.startswith("sqlite:////")  # resolved against the file's folder


def test_a_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL_SOURCE))
    source = settings.sources[0]
    assert source.timezone.key == "Asia/Shanghai"
    assert source.overlap == timedelta(minutes=5)
    assert source.batch_size == 20_000
    assert source.url == f"sqlite:///{tmp_path.resolve() / 'source.db'}"
    assert settings.store_url == f"sqlite:///{tmp_path.resolve() / 'var' / 'watchdog.db'}"
    assert settings.rules_dir == tmp_path / "rules"


def test_a_bad_duration_is_named_with_file_key_and_value(tmp_path: Path) -> None:
    text = MINIMAL_SOURCE.replace("[sources.queries]", 'poll_interval = "soon"\n[sources.queries]')
    assert problems_of(write(tmp_path, text)) == [
        'config.toml: sources[0].poll_interval: expected a duration like "60s", got "soon"'
    ]


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = """
[store]
url = 5
colour = "red"

[rules]
folder = "rules"

[[sources]]
name = "Bad Name"
url = "sqlite:///x.db"
timezone = "Mars/Olympus"
batch_size = 0
[sources.queries]
cases = "  "
invoices = "SELECT 1"
"""
    assert problems_of(write(tmp_path, text)) == [
        "config.toml: store.url: expected a string, got 5",
        "config.toml: store.colour: unknown key",
        "config.toml: rules.folder: unknown key",
        "config.toml: sources[0].name: expected lower-case letters, digits, '-' or '_', "
        "got 'Bad Name'",
        'config.toml: sources[0].timezone: unknown time zone "Mars/Olympus"',
        "config.toml: sources[0].batch_size: must be at least 1, got 0",
        "config.toml: sources[0].queries.cases: query is empty",
        "config.toml: sources[0].queries.invoices: unknown key",
    ]


def test_duplicate_source_names_are_refused(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, MINIMAL_SOURCE + MINIMAL_SOURCE)) == [
        'config.toml: sources[1].name: duplicate source name "county"'
    ]


def test_a_config_without_sources_or_cases_query_says_what_is_required(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "")) == [
        "config.toml: sources: at least one [[sources]] entry is required"
    ]
    text = '[[sources]]\nname = "a"\nurl = "sqlite:///a.db"\n'
    assert problems_of(write(tmp_path, text)) == [
        "config.toml: sources[0].queries.cases: is required (the query that returns the cases)"
    ]


def test_secrets_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRC_PASSWORD", "s3cret")
    text = MINIMAL_SOURCE.replace(
        "sqlite:///source.db", "postgresql+psycopg://reader:${SRC_PASSWORD}@db.local/approvals"
    )
    settings = load_settings(write(tmp_path, text))
    assert settings.sources[0].url == "postgresql+psycopg://reader:s3cret@db.local/approvals"


def test_an_unset_environment_variable_is_named(tmp_path: Path) -> None:
    text = MINIMAL_SOURCE.replace("sqlite:///source.db", "postgresql://r:${NO_SUCH_VAR_X}@h/d")
    assert problems_of(write(tmp_path, text)) == [
        "config.toml: sources[0].url: environment variable NO_SUCH_VAR_X is not set"
    ]


def test_invalid_toml_and_a_missing_file_are_one_line_errors(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "[store\nurl="))
    assert problem.startswith("config.toml: invalid TOML: ")
    assert problems_of(tmp_path / "absent.toml") == [f"{tmp_path / 'absent.toml'}: file not found"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("60s", 60), ("5m", 300), ("2h", 7200), ("1d", 86400)]
)
def test_durations_take_the_documented_units(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_evaluation_workers_default_to_the_cores_and_must_be_at_least_one(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL_SOURCE))
    assert settings.evaluation_workers == max(1, min(4, len(os.sched_getaffinity(0))))
    one = load_settings(write(tmp_path, "[daemon]\nevaluation_workers = 1\n" + MINIMAL_SOURCE))
    assert one.evaluation_workers == 1
    assert problems_of(write(tmp_path, "[daemon]\nevaluation_workers = 0\n" + MINIMAL_SOURCE)) == [
        "config.toml: daemon.evaluation_workers: must be at least 1, got 0"
    ]


def test_the_sqlite_cache_is_configurable_and_at_least_one_mib(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, MINIMAL_SOURCE)).sqlite_cache_mib == 128
    small = "[store]\nsqlite_cache_mib = 4\n" + MINIMAL_SOURCE
    assert load_settings(write(tmp_path, small)).sqlite_cache_mib == 4
    assert problems_of(write(tmp_path, "[store]\nsqlite_cache_mib = 0\n" + MINIMAL_SOURCE)) == [
        "config.toml: store.sqlite_cache_mib: must be at least 1, got 0"
    ]
