"""The assembled watchdog: settings, store, calendar, rules and one poller per source."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, update

from watchdog.audit.hooks import audit_violation_changes, compose, record_rule_set
from watchdog.calendar import WorkCalendar, load_overrides
from watchdog.calendar_watch import CalendarFile, record_fingerprint, stored_fingerprint
from watchdog.config import Settings
from watchdog.engine.altered import evaluate_altered_rules
from watchdog.engine.case_passes import evaluate_case_passes
from watchdog.engine.checks import schedule_events
from watchdog.engine.evaluate import (
    EvaluationPass,
    EvaluationResult,
    mark_evaluated,
    read_baseline,
)
from watchdog.engine.inspection_rules import evaluate_inspection_rules
from watchdog.engine.overdue import OverdueRule, OverdueRuleSettings
from watchdog.engine.patterns import PatternHosts
from watchdog.engine.rulefiles import RuleSpec, folder_fingerprint, load_rules
from watchdog.engine.shards import evaluate_in_shards, shard_jobs
from watchdog.errors import first_line
from watchdog.gc_policy import fewer_collections
from watchdog.notices import start_notices
from watchdog.sources.connect import open_source_engine
from watchdog.sources.poller import (
    Clock,
    PollResult,
    SourceError,
    SourcePoller,
    ensure_source_state,
    utc_now,
)
from watchdog.store import schema
from watchdog.store.checkpoint import WalCheckpointer
from watchdog.store.database import create_store_engine, sqlite_file
from watchdog.violations import ViolationListener

log = logging.getLogger(__name__)

DISABLE_AFTER_CASES = 20  # fewer failures than this may be bad data, not a broken rule


@dataclass
class CycleReport:
    """What one poll-and-evaluate cycle of one source did, or why it failed."""

    source: str
    poll: PollResult | None = None
    evaluation: EvaluationResult | None = None
    error: str | None = None

    def summary(self) -> str:
        if self.error is not None:
            return f'source "{self.source}": cycle failed: {self.error}'
        assert self.poll is not None and self.evaluation is not None
        counts = self.evaluation.counts
        return (
            f'source "{self.source}": read {self.poll.rows_read} rows '
            f"({self.poll.rows_changed} changed, {self.poll.rows_quarantined} quarantined), "
            f"evaluated {self.evaluation.cases_evaluated} cases: violations opened "
            f"{counts.opened}, upgraded {counts.upgraded}, resolved {counts.resolved}, "
            f"reopened {counts.reopened}"
            + (
                f", rule errors: {'; '.join(self.evaluation.errors)}"
                if self.evaluation.errors
                else ""
            )
            + (
                f", rules failed on {self.evaluation.rule_failures} case(s)"
                if self.evaluation.rule_failures
                else ""
            )
            + " in "
            f"{self.poll.seconds + self.evaluation.seconds:.2f}s"
        )


RulePass = tuple[str, Callable[[], EvaluationResult]]  # rule kind, the pass


def run_passes(source: str, passes: list[RulePass]) -> EvaluationResult:
    """Run rule passes in order; one that fails is logged with its rule kind and recorded
    as an error of the result, and the others still run."""
    result = EvaluationResult(source)
    for kind, evaluate_pass in passes:
        try:
            result.add(evaluate_pass())
        except Exception as exc:  # one failing rule must not stop the others
            log.exception('source "%s": %s rules failed: %s', source, kind, first_line(exc))
            result.errors.append(f"{kind} rules: {first_line(exc)}")
    return result


def build_calendar(settings: Settings) -> WorkCalendar:
    overrides = load_overrides(settings.calendar_overrides) if settings.calendar_overrides else None
    return WorkCalendar(overrides)


class Watchdog:
    """Runs cycles for the configured sources against one store."""

    def __init__(
        self, settings: Settings, store: Engine | None = None, clock: Clock = utc_now
    ) -> None:
        self.settings = settings
        self.store = store or create_store_engine(
            settings.store_url,
            sqlite_cache_mib=settings.sqlite_cache_mib,
            background_checkpoints=True,
        )
        # A SQLite store's write-ahead log is copied back beside the cycles, not inside
        # their commits (`store.checkpoint`); a store given by the caller keeps SQLite's
        # own checkpoints.
        database = sqlite_file(self.store) if store is None else None
        self.checkpointer = WalCheckpointer(database).start() if database else None
        self.clock = clock
        self.calendar_file = CalendarFile(settings.calendar_overrides)
        self.calendar = self.calendar_file.calendar
        self._rules_lock = threading.Lock()
        # Sources whose next evaluation must look at every case: a changed rule may
        # judge cases that no incremental pass would look at again.
        self._full_next: set[str] = set()
        self.rules = load_rules(settings.rules_dir)
        for problem in self.rules.problems:
            log.error("rule file skipped: %s", problem)
        # Rules that failed on every case, by id → their file's name; kept until the file
        # changes (see `_disable_failing_rules`).
        self.disabled_rules: dict[str, str] = {}
        self._pollers: dict[str, SourcePoller] = {}
        self.pattern_hosts = PatternHosts()  # durable-rules workers, kept between cycles
        # Hears every violation change inside the transaction that records it: the audit
        # trail always, then notices (audit first: it takes the chain lock before the
        # notice counter's, the order every transaction keeps).
        self.violation_listener: ViolationListener | None = audit_violation_changes
        self.notices = start_notices(settings.notices, self.calendar, lambda: self.rules)
        if self.notices is not None:
            self.violation_listener = compose(audit_violation_changes, self.notices.listener)
        self._audited_rules: str | None = None  # the rule set last checked into the chain

    def poller(self, name: str) -> SourcePoller:
        if name not in self._pollers:
            source = self.settings.source(name)
            engine = open_source_engine(source)
            self._pollers[name] = SourcePoller(source, engine, self.store, self.clock)
        return self._pollers[name]

    def poll(self, name: str) -> PollResult:
        return self.poller(name).poll()

    def reload_rules_if_changed(self) -> bool:
        """Load the rules folder again if any file in it changed; log what changed.

        Called at the start of each cycle, so an edited rule takes effect at the next
        cycle without a restart. A broken file is reported and skipped as at start.
        """
        with self._rules_lock:
            if folder_fingerprint(self.settings.rules_dir) == self.rules.fingerprint:
                return False
            before = self.rules
            self.rules = load_rules(self.settings.rules_dir)
            self.pattern_hosts.keep_only(
                rule.prepared.ruleset for rule in self.rules.of_kind("pattern")
            )
            self._full_next = {source.name for source in self.settings.sources}
            for rule_id, file_name in list(self.disabled_rules.items()):
                if self.rules.digests.get(file_name) != before.digests.get(file_name):
                    del self.disabled_rules[rule_id]
                    log.warning('rule "%s" enabled again: %s changed', rule_id, file_name)
        old = {rule.id: rule.file.name for rule in before.rules}
        new = {rule.id: rule.file.name for rule in self.rules.rules}
        changed_files = {
            name
            for name, digest in self.rules.digests.items()
            if before.digests.get(name) != digest
        }
        changed = sorted(i for i in old.keys() & new.keys() if new[i] in changed_files)
        log.warning(
            "rules reloaded from %s: added %s, changed %s, removed %s",
            self.settings.rules_dir,
            ", ".join(sorted(new.keys() - old.keys())) or "none",
            ", ".join(changed) or "none (reference data only)",
            ", ".join(sorted(old.keys() - new.keys())) or "none",
        )
        for problem in self.rules.problems:
            log.error("rule file skipped: %s", problem)
        return True

    def reload_calendar_if_changed(self) -> bool:
        """Take up an edited calendar override file (see `watchdog.calendar_watch`)."""
        if not self.calendar_file.reload_if_changed():
            return False
        self.calendar = self.calendar_file.calendar
        if self.notices is not None:  # notice deadlines count working days too
            self.notices.issuer.calendar = self.calendar
        return True

    def overdue_rule(self, on: date) -> OverdueRule | None:
        """The overdue rule in force on a date (the first in file order), if any."""
        for spec in self.rules.of_kind("overdue"):
            if spec.in_force(on) and spec.id not in self.disabled_rules:
                return OverdueRule(OverdueRuleSettings(spec.id, spec.prepared), self.calendar)
        return None

    def evaluate(
        self, name: str, as_of: datetime, *, record: bool, full: bool = False
    ) -> EvaluationResult:
        """Every rule over one source's stored rows at `as_of`: a dry run's result lists
        the findings, a recording pass's only counts them (they are in the store).

        Recording passes look at what changed since the last one (unless `full`) and then
        mark the source evaluated up to its current poll; dry runs look at everything.
        A pass that fails is logged with its rule kind and the others still run; the
        source is then not marked evaluated, so the next cycle looks at the same changes.
        """
        source = self.settings.source(name)
        if record and self._audited_rules != self.rules.fingerprint:
            loaded = self.rules  # appended before any violation it judges
            record_rule_set(self.store, self.settings.rules_dir, loaded, self.clock())
            self._audited_rules = loaded.fingerprint
        baseline = read_baseline(self.store, name)
        calendar = self.calendar_file.fingerprint  # read before the rules take the calendar
        incremental = record and not full and baseline.evaluated_at is not None
        if incremental and stored_fingerprint(self.store, name) != calendar:
            log.warning(
                'source "%s": the working-day calendar changed since the last evaluation: '
                "evaluating every case",
                name,
            )
            incremental = False
        zone = source.timezone
        result = EvaluationResult(name)
        run = EvaluationPass(
            self.store,
            name,
            zone,
            as_of,
            record,
            since=baseline.evaluated_seq if incremental else None,
            last=baseline.evaluated_at if incremental else None,
            now=self.clock(),
            listener=self.violation_listener if record else None,
            keep_findings=not record,  # what a recording pass found is in the store
            pattern_hosts=self.pattern_hosts,
        )
        with nullcontext() if incremental else fewer_collections():
            rules = self.active_rules()
            inspection: RulePass = ("inspection", lambda: evaluate_inspection_rules(run, rules))
            # Last: the data-altered pass reports the violations the passes before it
            # found contested.
            altered: RulePass = ("data altered", lambda: evaluate_altered_rules(run, rules))
            jobs = shard_jobs(self, run) if record and not incremental else []
            if jobs:
                # The inspection pass and the event checks (a full pass's come from the
                # rows alone) need nothing of the case passes: they run here while the
                # workers finish their ranges.
                def also() -> EvaluationResult:
                    meanwhile = run_passes(name, [inspection])
                    meanwhile.add(self._schedule_events(name, as_of, None))
                    return meanwhile

                result.add(evaluate_in_shards(self, run, jobs, also=also))
                result.add(run_passes(name, [altered]))
            else:
                result.add(self.evaluate_cases(run))
                result.add(run_passes(name, [inspection, altered]))
                if record and not result.errors:
                    since = run.since if incremental else None
                    result.add(self._schedule_events(name, as_of, since))
        if record and not result.errors:
            mark_evaluated(self.store, name, baseline.poll_seq, as_of)
            record_fingerprint(self.store, name, calendar)
        self._disable_failing_rules(name, result)
        return result

    def _schedule_events(self, name: str, as_of: datetime, since: int | None) -> EvaluationResult:
        """Keep the source's event checks (`engine.checks.schedule_events`); a failure is
        an error of the result, so the source is not marked evaluated."""
        result = EvaluationResult(name)
        try:
            with self.store.begin() as connection:
                schedule_events(connection, name, as_of, since)
        except Exception as exc:
            log.exception('source "%s": cannot schedule future events', name)
            result.errors.append(f"event checks: {first_line(exc)}")
        return result

    def active_rules(self) -> tuple[RuleSpec, ...]:
        return tuple(rule for rule in self.rules.rules if rule.id not in self.disabled_rules)

    def evaluate_cases(self, run: EvaluationPass) -> EvaluationResult:
        """The rules that judge each case on its own rows (overdue, procedure and fee,
        pattern), over one stream of cases. A full pass may run them on ranges of cases
        in several processes."""
        overdue = self.overdue_rule(run.as_of.astimezone(run.zone).date())
        if overdue is None:
            log.warning("no overdue rule in force on %s", run.as_of.date())
        rules = self.active_rules()
        cases: RulePass = ("case", lambda: evaluate_case_passes(run, overdue, rules))
        return run_passes(run.source, [cases])

    def _disable_failing_rules(self, source: str, result: EvaluationResult) -> None:
        """A rule that failed on every case it was applied to (at least
        DISABLE_AFTER_CASES of them) is broken, not unlucky: stop running it until its
        file changes, and say so."""
        for rule_id, stats in result.rules.items():
            if stats.failed_everywhere and stats.applied >= DISABLE_AFTER_CASES:
                spec = next((r for r in self.rules.rules if r.id == rule_id), None)
                if spec is None or rule_id in self.disabled_rules:
                    continue
                with self._rules_lock:
                    self.disabled_rules[rule_id] = spec.file.name
                log.error(
                    'rule "%s" disabled: it failed on all %d cases of source "%s" it was '
                    "applied to (first: %s); it runs again when %s changes",
                    rule_id,
                    stats.applied,
                    source,
                    stats.first_error,
                    spec.file,
                )

    def run_cycle(self, name: str) -> CycleReport:
        """Poll one source and evaluate it now; a failure is recorded, never raised."""
        report = CycleReport(name)
        try:
            self.reload_rules_if_changed()
            self.reload_calendar_if_changed()
            report.poll = self.poll(name)
            with self._rules_lock:
                full = name in self._full_next
            report.evaluation = self.evaluate(name, self.clock(), record=True, full=full)
            if not report.evaluation.errors:
                with self._rules_lock:
                    self._full_next.discard(name)
        except SourceError as exc:
            report.error = str(exc)
        except Exception as exc:  # one source's failure must not stop the others
            log.exception('source "%s": unexpected error in cycle', name)
            report.error = f"{type(exc).__name__}: {first_line(exc)}"
        if self.notices is not None:
            try:  # digests and escalations due by the clock; they never stop the cycle
                self.notices.run_scheduled(self.store, self.clock())
            except Exception as exc:
                self.notices.failures += 1
                log.exception("notices: scheduled step failed: %s", first_line(exc))
        self._record_outcome(report)
        return report

    def _record_outcome(self, report: CycleReport) -> None:
        state = schema.source_state
        now = self.clock()
        try:
            with self.store.begin() as connection:
                ensure_source_state(connection, report.source)
                where = update(state).where(state.c.source == report.source)
                if report.error is None:
                    connection.execute(where.values(last_success_at=now, consecutive_failures=0))
                else:
                    connection.execute(
                        where.values(
                            last_error=report.error[:2000],
                            last_error_at=now,
                            consecutive_failures=state.c.consecutive_failures + 1,
                        )
                    )
        except Exception as exc:
            log.error(
                'source "%s": cannot record cycle outcome in the store: %s',
                report.source,
                first_line(exc),
            )

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.pattern_hosts.close()
        for poller in self._pollers.values():
            poller.source_engine.dispose()
        self.store.dispose()
