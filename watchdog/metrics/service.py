"""The daemon's metrics: record each cycle, refresh the store snapshot, serve both.

Nothing here may break a cycle: the daemon calls `after_cycle` inside a try block, and a
failed snapshot keeps the previous figures (counted in watchdog_snapshot_errors_total).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from watchdog.app import CycleReport, Watchdog
from watchdog.metrics.definitions import RULE_PASSES, Metrics
from watchdog.metrics.health import HealthTracker
from watchdog.metrics.server import MetricsServer
from watchdog.metrics.settings import MetricsSettings
from watchdog.metrics.snapshot import SourceClock, take_snapshot

log = logging.getLogger(__name__)


def record_cycle(metrics: Metrics, report: CycleReport) -> None:
    """Count what one cycle did: its poll, its rules and the violations it changed."""
    source = report.source
    metrics.cycles.labels(source, "failed" if report.error else "ok").inc()
    metrics.source_up.labels(source).set(0 if report.error else 1)
    if report.poll is not None:
        metrics.poll_duration.labels(source).observe(report.poll.seconds)
        metrics.rows_read.labels(source).inc(report.poll.rows_read)
        metrics.rows_quarantined.labels(source).inc(report.poll.rows_quarantined)
    evaluation = report.evaluation
    if evaluation is None:
        return
    counts = evaluation.counts
    metrics.violations_opened.labels(source).inc(counts.opened)
    metrics.violations_upgraded.labels(source).inc(counts.upgraded)
    metrics.violations_resolved.labels(source).inc(counts.resolved)
    metrics.violations_reopened.labels(source).inc(counts.reopened)
    for rule_id, stats in evaluation.rules.items():
        metrics.rule_duration.labels(source, rule_id).observe(stats.seconds)
        metrics.rule_errors.labels(source, rule_id).inc(stats.failed)
    for error in evaluation.errors:
        # "overdue rules: <message>": the pass name comes first (watchdog.app).
        name = error.split(" rules:", 1)[0]
        metrics.rule_pass_failures.labels(source, RULE_PASSES.get(name, "other")).inc()


class MetricsService:
    """Owns the registry, the health tracker, the snapshot and the HTTP server."""

    def __init__(self, watchdog: Watchdog, settings: MetricsSettings) -> None:
        self.watchdog = watchdog
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics = Metrics(self.registry)
        intervals = {s.name: s.poll_interval for s in watchdog.settings.sources}
        self.health = HealthTracker(intervals, datetime.now(UTC))
        for source in watchdog.settings.sources:
            self.metrics.prepare_source(source.name, source.poll_interval.total_seconds())
        self._snapshot_lock = threading.Lock()
        self.server: MetricsServer | None = None

    def start(self) -> None:
        """Serve /metrics and /healthz; a taken port is logged, the daemon runs on."""
        if not self.settings.enabled:
            log.info("metrics disabled ([metrics] enabled = false)")
            return
        try:
            self.server = MetricsServer(
                self.settings.address, self.settings.port, self.registry, self.health
            )
        except OSError as exc:
            # Supervision goes on without the endpoint; Prometheus's `up` shows it missing.
            log.error(
                "metrics: cannot listen on %s:%d ([metrics] address/port): %s",
                self.settings.address,
                self.settings.port,
                exc,
            )
            return
        self.server.start()
        log.info(
            "metrics on http://%s:%d/metrics, health on /healthz",
            self.settings.address,
            self.server.port,
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def after_cycle(self, report: CycleReport) -> None:
        """Record one cycle and refresh the store figures."""
        self.health.record(report.source, datetime.now(UTC), report.error)
        record_cycle(self.metrics, report)
        self.refresh_snapshot()

    def refresh_snapshot(self) -> None:
        watchdog = self.watchdog
        sources = [SourceClock(s.name, s.timezone) for s in watchdog.settings.sources]
        rules = [(rule.id, rule.kind) for rule in watchdog.rules.rules]
        # Cycles of several sources end in parallel; one snapshot at a time is enough.
        with self._snapshot_lock:
            try:
                snapshot = take_snapshot(
                    watchdog.store, sources, watchdog.calendar, watchdog.clock(), rules
                )
            except Exception:
                self.metrics.snapshot_errors.inc()
                raise
        self.metrics.store.update(snapshot)
