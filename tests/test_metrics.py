"""Metrics: definitions on a fresh registry, store snapshot figures, labels, /healthz."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert, text

from tests.test_cli import RULES
from tests.test_poller import make_source, row, settings_for
from watchdog import __version__
from watchdog.app import CycleReport, Watchdog
from watchdog.calendar import WorkCalendar
from watchdog.config import Settings
from watchdog.daemon import Daemon
from watchdog.engine.evaluate import EvaluationResult, RuleStats
from watchdog.metrics.definitions import ALLOWED_LABELS, Metrics
from watchdog.metrics.health import HealthTracker
from watchdog.metrics.server import MetricsServer
from watchdog.metrics.service import record_cycle
from watchdog.metrics.settings import MetricsSettings
from watchdog.metrics.snapshot import SourceClock, StoreSnapshot, take_snapshot
from watchdog.sources.poller import EntityPoll, PollResult
from watchdog.store import schema
from watchdog.violations import ReconcileCounts

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 6, 12, 10, 0, tzinfo=ZONE).astimezone(UTC)  # a Friday
A, B, C = "371331001", "371331002", "371331003"
NAMES = {A: "东阳县市场监督管理局", B: "东阳县住房和城乡建设局", C: "东阳县卫生健康局"}


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZONE).astimezone(UTC)


def june(day: int) -> date:
    return date(2026, 6, day)


def case(
    case_id: str,
    dept: str,
    accepted: date | None,
    promised: int,
    completed: date | None = None,
    matter: str = "M1",
) -> dict[str, Any]:
    return {
        "source": "s1",
        "case_id": case_id,
        "matter_code": matter,
        "matter_name": {"M1": "食品经营许可证核发", "M2": "建筑工程施工许可证核发"}[matter],
        "dept_code": dept,
        "dept_name": NAMES[dept],
        "applicant_id": f"applicant-{case_id}",
        "applied_at": at(accepted) if accepted else None,
        "accepted_at": at(accepted) if accepted else None,
        "promised_limit": promised,
        "statutory_limit": None,
        "limit_unit": "W",
        "completed_at": at(completed, 16) if completed else None,
        "result": None,
        "updated_at": NOW - timedelta(days=1),
        "change_seq": 1,
    }


CASES = [
    # Open, due 06-08 (5 working days after Monday 06-01): past due on 06-12.
    case("c1", A, june(1), 5),
    # Open, due 06-24: not past due.
    case("c2", A, june(10), 10),
    # Completed 06-05, due 06-08: on time; 4 counted days.
    case("c3", A, june(1), 5, june(5)),
    # Completed 06-08, due 06-03: late; 5 counted days.
    case("c4", A, june(1), 2, june(8)),
    # Completed 05-08, before the 30-day window: left out.
    case("c5", B, date(2026, 5, 6), 3, date(2026, 5, 8), matter="M2"),
    # A supplement pause 06-02..06-05 moves the due date 06-04 to 06-10: completed 06-08
    # is on time with 1 counted day.
    case("c6", B, june(1), 3, june(8), matter="M2"),
    # Accepted after the instant: not a case yet.
    case("c7", B, june(13), 3, matter="M2"),
    # Completed after the instant: still open, due 06-29.
    case("c8", B, june(1), 20, june(20), matter="M2"),
    # Not accepted: its department is known, its figures are 0.
    case("c9", C, None, 5),
]


def violation(n: int, rule: str, kind: str, severity: str, dept: str | None, state: str) -> Any:
    return {
        "fingerprint": f"fp{n}",
        "rule_id": rule,
        "kind": kind,
        "finding": kind,
        "source": "s1",
        "case_id": f"c{n}",
        "scope_key": f"c{n}",
        "subject": None,
        "dept_code": dept,
        "severity": severity,
        "state": state,
        "opened_at": NOW,
        "last_seen_at": NOW,
        "provisional": False,
        "evidence": {},
    }


def notice(n: int, dept: str, state: str, deadline: date) -> dict[str, Any]:
    return {
        "id": n,
        "number": f"JC-2026-{n:06d}",
        "year": 2026,
        "kind": "rectification",
        "dept_code": dept,
        "dept_name": NAMES[dept],
        "severity": "red",
        "state": state,
        "subject": "整改通知书",
        "body_text": "",
        "body_html": "",
        "issued_at": NOW - timedelta(days=10),
        "deadline": deadline,
        "updated_at": NOW,
    }


def delivery(n: int, notice_id: int, state: str, permanent: bool) -> dict[str, Any]:
    return {
        "notice_id": notice_id,
        "recipient": f"r{n}@example.org",
        "role": "to",
        "state": state,
        "attempts": 1,
        "permanent": permanent,
        "created_at": NOW,
    }


@pytest.fixture
def county(store: Engine) -> Engine:
    """A store with hand-made cases, violations, notices and deliveries of one source."""
    pause = {
        "source": "s1",
        "pause_id": "p1",
        "case_id": "c6",
        "kind": "supplement",
        "started_at": at(june(2)),
        "ended_at": at(june(5)),
        "granted_days": None,
        "updated_at": NOW - timedelta(days=1),
        "change_seq": 1,
    }
    with store.begin() as connection:
        connection.execute(insert(schema.cases), CASES)
        connection.execute(insert(schema.pauses), [pause])
        connection.execute(
            insert(schema.violations),
            [
                violation(1, "overdue", "overdue", "red", A, "open"),
                violation(2, "overdue", "overdue", "red", A, "open"),
                violation(3, "overdue", "overdue", "yellow", B, "resolved"),
                violation(4, "fees", "fee", "red", None, "open"),
            ],
        )
        connection.execute(
            insert(schema.notices),
            [
                notice(1, A, "issued", june(10)),  # past its deadline: overdue
                notice(2, A, "delivered", june(20)),  # deadline to come
                notice(3, B, "rectified", june(1)),  # rectified: not overdue
                notice(4, B, "escalated", june(1)),  # escalated already: not counted
            ],
        )
        connection.execute(
            insert(schema.notice_events),
            [
                {"notice_id": 1, "event": "issued", "at": NOW, "actor": "watchdog"},
                {"notice_id": 4, "event": "escalated", "at": NOW, "actor": "watchdog"},
            ],
        )
        connection.execute(
            insert(schema.deliveries),
            [
                delivery(1, 1, "sent", False),
                delivery(2, 1, "pending", False),
                delivery(3, 2, "failed", True),
                delivery(4, 2, "failed", False),
                delivery(5, 3, "failed", False),
            ],
        )
        connection.execute(
            insert(schema.source_state),
            [
                {
                    "source": "s1",
                    "poll_seq": 3,
                    "evaluated_seq": 3,
                    "last_success_at": NOW - timedelta(seconds=30),
                    "consecutive_failures": 0,
                }
            ],
        )
        connection.execute(
            insert(schema.watermarks),
            [
                {
                    "source": "s1",
                    "entity": "cases",
                    "updated_at": NOW - timedelta(seconds=120),
                    "rows_read": 9,
                    "advanced_at": NOW,
                }
            ],
        )
    return store


def snapshot_of(store: Engine) -> StoreSnapshot:
    return take_snapshot(
        store,
        [SourceClock("s1", ZONE), SourceClock("quiet", ZONE)],
        WorkCalendar(),
        NOW,
        rules=[("procedure", "procedure")],
    )


def test_the_snapshot_counts_each_figure_from_the_store(county: Engine) -> None:
    s = snapshot_of(county)
    assert s.departments == NAMES
    assert s.open_cases == {A: 2, B: 1, C: 0}
    assert s.cases_past_due == {A: 1, B: 0, C: 0}
    assert s.completed == {A: 2, B: 1, C: 0}
    assert s.completed_on_time == {A: 1, B: 1, C: 0}
    assert {code: (m.matter_name, m.dept, m.average) for code, m in s.processing_days.items()} == {
        "M1": ("食品经营许可证核发", A, 4.5),
        "M2": ("建筑工程施工许可证核发", B, 1.0),
    }
    assert s.notices == {
        "issued": 1,
        "delivered": 1,
        "acknowledged": 0,
        "rectified": 1,
        "closed": 0,
        "escalated": 1,
    }
    assert s.notices_overdue == {A: 1, B: 0, C: 0}
    assert s.escalations == 1
    assert s.deliveries == {
        "pending": 1,
        "sending": 0,
        "sent": 1,
        "failed_transient": 2,
        "failed_permanent": 1,
    }
    assert s.last_success == {"s1": (NOW - timedelta(seconds=30)).timestamp(), "quiet": 0.0}
    assert s.consecutive_failures == {"s1": 0, "quiet": 0}
    assert s.watermark_lag == {("s1", "cases"): 120.0}
    assert s.calendar_coverage_days == (WorkCalendar().coverage_end - june(12)).days
    assert s.clock_errors == 0


def test_open_violations_are_reported_for_every_rule_severity_and_department(
    county: Engine,
) -> None:
    s = snapshot_of(county)
    nonzero = {labels: n for labels, n in s.open_violations.items() if n}
    assert nonzero == {("overdue", "overdue", "red", A): 2, ("fees", "fee", "red", "none"): 1}
    rules = {(rule, kind) for rule, kind, _, _ in s.open_violations}
    assert rules == {("overdue", "overdue"), ("fees", "fee"), ("procedure", "procedure")}
    # every (rule, severity, department) is there, zeros included, so series exist
    assert len(s.open_violations) == 3 * 3 * (len(s.departments) + 1)  # + "none"
    assert s.dept_name("none") == "（未注明部门）"


def test_an_empty_store_still_exports_every_bounded_series(store: Engine) -> None:
    s = snapshot_of(store)
    assert s.notices == dict.fromkeys(s.notices, 0) and len(s.notices) == 6
    assert len(s.deliveries) == 5 and not any(s.deliveries.values())
    metrics = Metrics(CollectorRegistry())
    metrics.store.update(s)
    exported = families(metrics.registry)
    assert {sample.labels["state"] for sample in exported["watchdog_notices"]} == set(s.notices)
    assert exported["watchdog_calendar_coverage_days"][0].value == s.calendar_coverage_days


def families(registry: CollectorRegistry) -> dict[str, list[Any]]:
    text = generate_latest(registry).decode()
    return {
        family.name if family.type != "counter" else family.name + "_total": family.samples
        for family in text_string_to_metric_families(text)
    }


def test_metrics_are_defined_on_the_injected_registry_only() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first).prepare_source("s1", 60)
    Metrics(second)  # a second daemon in the same process: no clash, nothing shared
    assert first.get_sample_value("watchdog_build_info", {"version": __version__}) == 1.0
    assert first.get_sample_value("watchdog_source_poll_interval_seconds", {"source": "s1"}) == 60
    assert first.get_sample_value("watchdog_violations_opened_total", {"source": "s1"}) == 0
    assert (
        second.get_sample_value("watchdog_source_poll_interval_seconds", {"source": "s1"}) is None
    )
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("watchdog_build_info", {"version": __version__}) is None


def test_a_cycle_report_feeds_the_counters_and_histograms() -> None:
    metrics = Metrics(CollectorRegistry())
    poll = PollResult("s1", 1, [EntityPoll("cases", rows_read=40, rows_quarantined=2)], 0.3)
    evaluation = EvaluationResult("s1")
    evaluation.counts = ReconcileCounts(opened=5, upgraded=2, resolved=1, reopened=0)
    evaluation.rules = {"overdue": RuleStats(applied=10, failed=1, seconds=0.02)}
    evaluation.errors = ["inspection rules: OperationalError: no such table"]
    record_cycle(metrics, CycleReport("s1", poll, evaluation))
    record_cycle(metrics, CycleReport("s1", error="source unreachable"))
    value = metrics.registry.get_sample_value
    source = {"source": "s1"}
    assert value("watchdog_violations_opened_total", source) == 5
    assert value("watchdog_violations_upgraded_total", source) == 2
    assert value("watchdog_violations_resolved_total", source) == 1
    assert value("watchdog_source_rows_read_total", source) == 40
    assert value("watchdog_source_rows_quarantined_total", source) == 2
    assert value("watchdog_source_poll_duration_seconds_count", source) == 1
    assert value("watchdog_source_poll_duration_seconds_sum", source) == pytest.approx(0.3)
    rule = {"source": "s1", "rule": "overdue"}
    assert value("watchdog_rule_evaluation_duration_seconds_count", rule) == 1
    assert value("watchdog_rule_errors_total", rule) == 1
    failed_pass = {"source": "s1", "rule_pass": "inspection"}
    assert value("watchdog_rule_pass_failures_total", failed_pass) == 1
    assert value("watchdog_cycles_total", {"source": "s1", "state": "ok"}) == 1
    assert value("watchdog_cycles_total", {"source": "s1", "state": "failed"}) == 1
    assert value("watchdog_source_up", source) == 0


def test_no_label_carries_a_case_a_person_or_an_address(county: Engine) -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.prepare_source("s1", 60)
    metrics.store.update(snapshot_of(county))
    exported = families(metrics.registry)
    assert "watchdog_open_violations" in exported and "watchdog_processing_days_avg_30d" in exported
    forbidden = {c["case_id"] for c in CASES} | {c["applicant_id"] for c in CASES}
    forbidden |= {f"r{n}@example.org" for n in range(1, 6)} | {"p1"}
    for name, samples in exported.items():
        for sample in samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (name, sample.labels)
            assert not set(sample.labels.values()) & forbidden, (name, sample.labels)
    names = {s.labels["dept_name"] for s in exported["watchdog_open_cases"]}
    assert names == set(NAMES.values())


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def health_server() -> Iterator[tuple[MetricsServer, HealthTracker, Clock]]:
    clock = Clock(NOW)
    health = HealthTracker({"a": timedelta(seconds=60), "b": timedelta(seconds=60)}, NOW)
    server = MetricsServer("127.0.0.1", 0, CollectorRegistry(), health, clock)
    server.start()
    yield server, health, clock
    server.stop()


def get(port: int, path: str, accept: str = "text/plain") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_healthz_is_200_only_while_every_source_succeeded_within_3_intervals(
    health_server: tuple[MetricsServer, HealthTracker, Clock],
) -> None:
    server, health, clock = health_server
    status, body = get(server.port, "/healthz")
    assert status == 503
    assert body.splitlines() == [
        f'source "{name}": no cycle finished since the daemon started at {NOW.isoformat()}'
        for name in ("a", "b")
    ]
    health.record("a", NOW, None)
    health.record("b", NOW, None)
    assert get(server.port, "/healthz") == (200, "ok\n")
    health.record("b", NOW + timedelta(seconds=60), 'source "b": cannot connect: refused')
    status, body = get(server.port, "/healthz", accept="application/json")
    assert status == 503
    assert json.loads(body) == {
        "healthy": False,
        "problems": ['source "b": last cycle failed: source "b": cannot connect: refused'],
    }
    health.record("b", NOW + timedelta(seconds=120), None)
    clock.now = NOW + timedelta(seconds=180)
    assert get(server.port, "/healthz") == (200, "ok\n")
    clock.now = NOW + timedelta(seconds=181)
    status, body = get(server.port, "/healthz")
    assert (status, body) == (
        503,
        'source "a": last successful cycle 181s ago, more than 3 poll intervals (180s)\n',
    )


def test_metrics_are_served_beside_healthz(
    health_server: tuple[MetricsServer, HealthTracker, Clock],
) -> None:
    server, _, _ = health_server
    status, _ = get(server.port, "/metrics")
    assert status == 200
    assert get(server.port, "/nothing")[0] == 404


def test_a_case_the_clock_cannot_read_is_counted_and_the_rest_still_add_up(
    county: Engine,
) -> None:
    broken = case("c10", A, june(1), 5) | {"limit_unit": "X"}  # not W or N
    with county.begin() as connection:
        connection.execute(insert(schema.cases), [broken])
    s = snapshot_of(county)
    assert s.clock_errors == 1
    assert s.open_cases == {A: 2, B: 1, C: 0}


FIXED = datetime(2026, 3, 10, 2, tzinfo=UTC)


def daemon_for(tmp_path: Path, store: Engine) -> Daemon:
    """A daemon on a two-case SQLite source; its metrics server is not started."""
    source = make_source(tmp_path, [row("C1", "2026-03-02 10:00:00"), row("C2", "2026-03-02")])
    settings = Settings(
        path=tmp_path / "config.toml",
        store_url=store.url.render_as_string(hide_password=False),
        sources=(settings_for(source),),
        calendar_overrides=None,
        rules_dir=RULES,
        log_level="INFO",
        metrics=MetricsSettings(port=0),
    )
    return Daemon(Watchdog(settings, store, clock=lambda: FIXED))


def test_each_daemon_cycle_records_its_metrics_and_refreshes_the_snapshot(
    tmp_path: Path, store: Engine
) -> None:
    daemon = daemon_for(tmp_path, store)
    report = daemon.cycle("county")
    assert report is not None and report.error is None
    value = daemon.metrics.registry.get_sample_value
    assert value("watchdog_cycles_total", {"source": "county", "state": "ok"}) == 1
    assert value("watchdog_source_rows_read_total", {"source": "county"}) == 2
    labels = {"dept": "SCJGJ", "dept_name": "SCJGJ"}
    assert value("watchdog_open_cases", labels) == 2
    assert daemon.metrics.health.problems(datetime.now(UTC)) == []


def test_a_failing_snapshot_is_logged_and_counted_and_the_cycle_stands(
    tmp_path: Path, store: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = daemon_for(tmp_path, store)
    with store.begin() as connection:
        connection.execute(text("DROP TABLE deliveries"))  # only the snapshot reads it
    report = daemon.cycle("county")
    assert report is not None and report.error is None
    value = daemon.metrics.registry.get_sample_value
    assert value("watchdog_snapshot_errors_total") == 1
    assert value("watchdog_cycles_total", {"source": "county", "state": "ok"}) == 1
    assert daemon.metrics.metrics.store.snapshot is None
    assert 'source "county": metrics not updated after the cycle' in caplog.text
