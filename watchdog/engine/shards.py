"""A full evaluation of a large source split across processes by ranges of case ids.

The passes that judge each case on its own rows (overdue, procedure and fee, pattern)
are Python-bound: a million cases took minutes on one core. Their verdicts and the
violations they reconcile depend on one case's rows only, so the cases can be split
into ranges of case ids, each range evaluated in its own process with the same rules,
calendar and instant, and the results added up. The passes over whole sources
(inspections, data altered) and the bookkeeping after them stay in the calling process
and run once the ranges are done.

Each worker is a fresh interpreter (`spawn`: the daemon has threads, which `fork`
would copy in whatever state they are in) that loads the same configuration file and
checks that it sees the same rule set; it records in its own transactions, one per
chunk as always, so a range that fails leaves the others recorded and the source not
marked evaluated: the next cycle evaluates it in full again.

Only recording full passes of sources with at least PARALLEL_MIN_CASES cases are
split: below that, starting the interpreters (about a second) costs more than it saves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select

from watchdog.engine.evaluate import EvaluationPass, EvaluationResult
from watchdog.gc_policy import fewer_collections
from watchdog.store import schema

if TYPE_CHECKING:
    from watchdog.app import Watchdog

log = logging.getLogger(__name__)

PARALLEL_MIN_CASES = 100_000
# The calling process runs the inspection pass and the event checks after its own
# range, while the workers finish theirs, and the data-altered pass once they have:
# about 5 % of a full pass's work at 1M cases (inspection 5-7 s beside a worker, event
# checks 0.3 s on PostgreSQL and 1.2 s on SQLite, of ~95-110 s of work). Its range is
# that much smaller, so that it finishes when the workers do: at 4 % the caller ended
# last, at 7 % the worker ended ~4 s after it.
TAIL_SHARE = 0.05
CaseRange = tuple[str | None, str | None]  # low (inclusive), high (exclusive); None: open


@dataclass(frozen=True)
class ShardJob:
    """What a worker needs to evaluate one range the way the calling process would."""

    config: Path
    source: str
    as_of: datetime
    now: datetime
    cases: CaseRange
    rules_fingerprint: str
    disabled_rules: tuple[tuple[str, str], ...]  # (rule id, file name) as the caller has them


class ShardError(Exception):
    """A worker could not evaluate its range as the calling process would have."""


def case_ranges(
    store: Engine, source: str, parts: int, first_smaller_by: float = 0.0
) -> list[CaseRange]:
    """`parts` ranges of case ids in the store's order of ids, the first holding
    `first_smaller_by` (a fraction of all cases) fewer than the others, which share
    the rest equally."""
    cases = schema.cases
    with store.connect() as connection:
        total = connection.scalar(
            select(func.count()).select_from(cases).where(cases.c.source == source)
        )
        bounds: list[str | None] = [None]
        first = 1 / parts - first_smaller_by * (parts - 1) / parts
        for part in range(1, parts):
            share = first + (part - 1) * (1 - first) / (parts - 1)
            # The index on (source, case_id) gives the id at an offset without the rows.
            cut = connection.scalar(
                select(cases.c.case_id)
                .where(cases.c.source == source)
                .order_by(cases.c.case_id)
                .offset(int(int(total or 0) * share))
                .limit(1)
            )
            if cut is not None and cut != bounds[-1]:
                bounds.append(cut)
    bounds.append(None)
    return list(pairwise(bounds))


def shard_jobs(watchdog: Watchdog, run: EvaluationPass) -> list[ShardJob]:
    """The ranges of a recording full pass, one per worker; none (evaluate in this
    process) when the source is small or one worker is configured."""
    workers = watchdog.settings.evaluation_workers
    if workers < 2 or not run.record or run.incremental or run.cases is not None:
        return []
    cases = schema.cases
    with run.store.connect() as connection:
        # Counting stops early: only whether the source has PARALLEL_MIN_CASES matters.
        enough = connection.scalar(
            select(func.count()).select_from(
                select(cases.c.case_id)
                .where(cases.c.source == run.source)
                .limit(PARALLEL_MIN_CASES)
                .subquery()
            )
        )
    if int(enough or 0) < PARALLEL_MIN_CASES:
        return []
    return [
        ShardJob(
            config=watchdog.settings.path,
            source=run.source,
            as_of=run.as_of,
            now=run.now or run.as_of,
            cases=cases_range,
            rules_fingerprint=watchdog.rules.fingerprint,
            disabled_rules=tuple(sorted(watchdog.disabled_rules.items())),
        )
        for cases_range in case_ranges(run.store, run.source, workers, TAIL_SHARE)
    ]


def evaluate_in_shards(
    watchdog: Watchdog,
    run: EvaluationPass,
    jobs: list[ShardJob],
    also: Callable[[], EvaluationResult] | None = None,
) -> EvaluationResult:
    """Evaluate the first range here and the others in worker processes at once, then
    `also` here while the workers finish; the results added up. A worker that fails is
    an error of the result, naming its range."""
    started = time.monotonic()
    result = EvaluationResult(run.source)
    context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(jobs) - 1, mp_context=context) as pool:
        futures: list[tuple[ShardJob, Future[EvaluationResult]]] = [
            (job, pool.submit(evaluate_shard, job)) for job in jobs[1:]
        ]
        mine = watchdog.evaluate_cases(replace(run, cases=jobs[0].cases))
        outcomes = [(jobs[0], mine)]
        meanwhile = also() if also is not None else None
        for job, future in futures:
            try:
                outcomes.append((job, future.result()))
            except Exception as exc:  # a worker's failure is its range's, not the pass's
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.error(
                    'source "%s": evaluation of cases %s failed: %s',
                    run.source,
                    describe(job.cases),
                    message,
                )
                result.errors.append(f"cases {describe(job.cases)}: {message}")
    for _, outcome in outcomes:
        evaluated = result.cases_evaluated + outcome.cases_evaluated
        result.add(outcome)
        result.cases_evaluated = evaluated  # ranges are disjoint: their cases add up
    if meanwhile is not None:
        result.add(meanwhile)
    result.seconds = time.monotonic() - started
    log.info(
        'source "%s": full evaluation of %d cases in %d processes took %.1fs',
        run.source,
        result.cases_evaluated,
        len(jobs),
        result.seconds,
    )
    return result


def evaluate_shard(job: ShardJob) -> EvaluationResult:
    """In a worker: evaluate one range of cases with the configuration's rules."""
    # Imported here: the worker imports the whole application, the caller already has.
    from watchdog.app import Watchdog
    from watchdog.config import load_settings

    settings = load_settings(job.config)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    watchdog = Watchdog(settings, clock=lambda: job.now)
    try:
        if watchdog.rules.fingerprint != job.rules_fingerprint:
            raise ShardError(
                f"the rule files in {settings.rules_dir} changed during the evaluation"
            )
        watchdog.disabled_rules = dict(job.disabled_rules)
        run = EvaluationPass(
            watchdog.store,
            job.source,
            settings.source(job.source).timezone,
            job.as_of,
            record=True,
            now=job.now,
            listener=watchdog.violation_listener,
            cases=job.cases,
            keep_findings=False,  # recorded in the store; not sent back
            pattern_hosts=watchdog.pattern_hosts,
        )
        with fewer_collections():
            return watchdog.evaluate_cases(run)
    finally:
        watchdog.close()


def describe(cases: CaseRange) -> str:
    low, high = cases
    return (
        f"[{low or 'first'}, {high or 'last'}]" if high is None else f"[{low or 'first'}, {high})"
    )
