"""Every metric the daemon exports, defined in one place against an injected registry.

Two kinds of metric live here:

- metrics the daemon updates as cycles run (counters and histograms per source and
  rule), on prometheus-client's own types;
- gauges derived from the store, produced at scrape time by `StoreCollector` from the
  latest `StoreSnapshot` (a scrape never queries the database).

Labels: rule, kind, severity, dept and dept_name (the county's departments, so a Grafana
legend shows the name), matter and matter_name (the catalogue), source, entity, state,
rule_pass. Never a case id, a person or an address: every label value is bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from watchdog import __version__
from watchdog.metrics.snapshot import StoreSnapshot

PREFIX = "watchdog"
# Seconds: a poll of a quiet source takes milliseconds, a first full read minutes.
POLL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf"))
RULE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, float("inf"))
# Label sets, so the dashboards and the tests can check them against what is exported.
ALLOWED_LABELS = frozenset(
    {
        "rule",
        "kind",
        "severity",
        "dept",
        "dept_name",
        "matter",
        "matter_name",
        "source",
        "entity",
        "state",
        "rule_pass",
        "version",
        "le",
    }
)


class StoreCollector(Collector):
    """Exports the gauges of the latest StoreSnapshot; nothing before the first one."""

    def __init__(self) -> None:
        self._snapshot: StoreSnapshot | None = None
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> StoreSnapshot | None:
        return self._snapshot

    def update(self, snapshot: StoreSnapshot) -> None:
        with self._lock:  # a reference swap; the lock only orders concurrent writers
            self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return list(_families(None))

    def collect(self) -> Iterable[Metric]:
        return list(_families(self._snapshot))


def _families(s: StoreSnapshot | None) -> Iterator[Metric]:
    """The store gauges; with `s` None only their descriptions (no samples)."""
    dept = ["dept", "dept_name"]

    def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)

    violations = gauge(
        "open_violations",
        "Open violations by rule, kind, severity and department.",
        ["rule", "kind", "severity", *dept],
    )
    open_cases = gauge("open_cases", "Accepted cases not completed yet, by department.", dept)
    past_due = gauge(
        "cases_past_due", "Open cases past their promised due date, by department.", dept
    )
    completed = gauge(
        "cases_completed_30d", "Cases completed in the last 30 days, by department.", dept
    )
    on_time = gauge(
        "cases_completed_on_time_30d",
        "Cases completed in the last 30 days on or before the promised due date.",
        dept,
    )
    ratio = gauge(
        "on_time_completion_ratio_30d",
        "按时办结率: completed on time / completed, last 30 days (departments with completions).",
        dept,
    )
    days = gauge(
        "processing_days_avg_30d",
        "Average processing days (as the limit counts them) of cases completed in the last "
        "30 days, by matter.",
        ["matter", "matter_name", *dept],
    )
    notices = gauge("notices", "Rectification notices by state.", ["state"])
    notices_overdue = gauge(
        "notices_overdue",
        "Notices past their rectification deadline and not rectified, by department.",
        dept,
    )
    escalations = CounterMetricFamily(
        f"{PREFIX}_notice_escalations", "Notices escalated (督办), ever.", labels=[]
    )
    deliveries = gauge(
        "deliveries",
        "Notice deliveries by state (failed split into transient and permanent).",
        ["state"],
    )
    last_success = gauge(
        "source_last_success_timestamp_seconds",
        "Unix time of the last successful cycle of a source (0: none yet).",
        ["source"],
    )
    failures = gauge(
        "source_consecutive_failures", "Failed cycles in a row, per source.", ["source"]
    )
    lag = gauge(
        "source_watermark_lag_seconds",
        "Seconds since the newest change read from a source entity (its watermark).",
        ["source", "entity"],
    )
    coverage = gauge(
        "calendar_coverage_days",
        "Days from today to the last day the working-day calendar covers.",
        [],
    )
    taken = gauge("snapshot_timestamp_seconds", "Unix time the store figures were computed.", [])
    taking = gauge("snapshot_duration_seconds", "Seconds the last store snapshot took.", [])
    clock_errors = gauge(
        "snapshot_clock_errors", "Cases the last snapshot could not read the clock of.", []
    )
    if s is not None:
        for (rule, kind, severity, code), n in s.open_violations.items():
            violations.add_metric([rule, kind, severity, code, s.dept_name(code)], n)
        for code, name in s.departments.items():
            labels = [code, name]
            open_cases.add_metric(labels, s.open_cases.get(code, 0))
            past_due.add_metric(labels, s.cases_past_due.get(code, 0))
            done = s.completed.get(code, 0)
            completed.add_metric(labels, done)
            on_time.add_metric(labels, s.completed_on_time.get(code, 0))
            if done:
                ratio.add_metric(labels, s.completed_on_time.get(code, 0) / done)
            notices_overdue.add_metric(labels, s.notices_overdue.get(code, 0))
        for matter, figures in s.processing_days.items():
            days.add_metric(
                [matter, figures.matter_name, figures.dept, s.dept_name(figures.dept)],
                figures.average,
            )
        for state, n in s.notices.items():
            notices.add_metric([state], n)
        escalations.add_metric([], s.escalations)
        for state, n in s.deliveries.items():
            deliveries.add_metric([state], n)
        for source, at in s.last_success.items():
            last_success.add_metric([source], at)
        for source, n in s.consecutive_failures.items():
            failures.add_metric([source], n)
        for (source, entity), seconds in s.watermark_lag.items():
            lag.add_metric([source, entity], seconds)
        coverage.add_metric([], s.calendar_coverage_days)
        taken.add_metric([], s.taken_at.timestamp())
        taking.add_metric([], s.seconds)
        clock_errors.add_metric([], s.clock_errors)
    yield from (violations, open_cases, past_due, completed, on_time, ratio, days, notices)
    yield from (notices_overdue, escalations, deliveries, last_success, failures, lag)
    yield from (coverage, taken, taking, clock_errors)


class Metrics:
    """The daemon's metrics on one registry (a fresh one per daemon, or per test)."""

    def __init__(self, registry: CollectorRegistry, version: str = __version__) -> None:
        self.registry = registry

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=registry)

        self.build_info = Info(f"{PREFIX}_build", "The running watchdog.", registry=registry)
        self.build_info.info({"version": version})
        self.violations_opened = counter(
            "violations_opened", "Violations opened by evaluation cycles.", ["source"]
        )
        self.violations_upgraded = counter(
            "violations_upgraded", "Violations upgraded to a higher severity.", ["source"]
        )
        self.violations_resolved = counter(
            "violations_resolved", "Violations resolved by evaluation cycles.", ["source"]
        )
        self.violations_reopened = counter(
            "violations_reopened", "Resolved violations found again.", ["source"]
        )
        self.cycles = counter("cycles", "Poll-and-evaluate cycles by outcome.", ["source", "state"])
        self.poll_duration = Histogram(
            f"{PREFIX}_source_poll_duration_seconds",
            "Seconds one poll of a source took.",
            ["source"],
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.rows_read = counter("source_rows_read", "Rows read from a source.", ["source"])
        self.rows_quarantined = counter(
            "source_rows_quarantined", "Rows of a source quarantined as invalid.", ["source"]
        )
        self.poll_interval = Gauge(
            f"{PREFIX}_source_poll_interval_seconds",
            "Configured poll interval of a source.",
            ["source"],
            registry=registry,
        )
        self.source_up = Gauge(
            f"{PREFIX}_source_up",
            "1 when the last cycle of a source succeeded, 0 when it failed.",
            ["source"],
            registry=registry,
        )
        self.rule_duration = Histogram(
            f"{PREFIX}_rule_evaluation_duration_seconds",
            "Seconds one rule took in one evaluation cycle.",
            ["source", "rule"],
            buckets=RULE_BUCKETS,
            registry=registry,
        )
        self.rule_errors = counter(
            "rule_errors", "Cases (or enterprises) a rule raised on.", ["source", "rule"]
        )
        self.rule_pass_failures = counter(
            "rule_pass_failures",
            "Rule passes (overdue, case, inspection) that failed as a whole.",
            ["source", "rule_pass"],
        )
        self.snapshot_errors = Counter(
            f"{PREFIX}_snapshot_errors",
            "Store snapshots that failed (the previous figures stay).",
            registry=registry,
        )
        self.store = StoreCollector()
        registry.register(self.store)

    def prepare_source(self, source: str, poll_interval_seconds: float) -> None:
        """Create a source's series at 0 so they exist before its first cycle."""
        for counter in (
            self.violations_opened,
            self.violations_upgraded,
            self.violations_resolved,
            self.violations_reopened,
            self.rows_read,
            self.rows_quarantined,
        ):
            counter.labels(source)
        for state in ("ok", "failed"):
            self.cycles.labels(source, state)
        self.poll_duration.labels(source)
        self.poll_interval.labels(source).set(poll_interval_seconds)
        for rule_pass in RULE_PASSES.values():
            self.rule_pass_failures.labels(source, rule_pass)


# The evaluation's pass names (as its error messages start) → the rule_pass label.
RULE_PASSES = {"overdue": "overdue", "procedure and fee": "case", "inspection": "inspection"}
