"""Benchmark: evaluate every rule kind over a store of generated demo cases.

On SQLite or PostgreSQL, with the shipped rules and calendar:

1. generate the demo county's source (kept in the work folder and reused) and poll it
   into an empty store, in a child process (timed, but not one of the targets);
2. in another child process, the one measured: a full recording evaluation of every
   rule kind at the end of the generated data (targets: under 60 s);
3. change `--changes` cases in a copy of the source (complete open cases, correct
   completed ones, each with a new step row) and run one recording cycle: the poll and
   the incremental evaluation, timed separately (target: under 1 s);
4. the peak resident memory of that child (target: under 1 GB).

With SQLite the polled store is kept in the work folder and copied for each run; with
PostgreSQL the benchmark creates its own database and drops it at the end.

    python -m bench.evaluation --cases 1000000 --store sqlite|postgresql [--workdir var/bench]
                               [--profile] [--keep-polled]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
# After every row of the generated data (it ends on 2026-12-31; at 1M cases its last
# update is at 23:58), so the full evaluation sees the whole history. The changes are
# stamped after every generated row, or the poll's watermark would be past them (a
# source breaking the updated_at contract, which polling rightly does not see); the
# cycle runs after them.
FULL_AT = datetime(2026, 12, 31, 23, 59, 50, tzinfo=ZONE)
CHANGED_AT = FULL_AT + timedelta(seconds=4)
CYCLE_AT = FULL_AT + timedelta(seconds=8)
PASSES = {
    "evaluate_case_passes": "case rules",  # overdue, procedure, fee, pattern: one stream
    "evaluate_inspection_rules": "inspection",
}
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
AUTOVACUUM_NAPTIME = 60.0  # seconds, PostgreSQL's default
WRITTEN_TABLES = "violations, violation_events, case_checks"


# ---- where things are ------------------------------------------------------------------


def source_path(workdir: Path, cases: int) -> Path:
    return workdir / f"source-{cases}.db"


def working_source(workdir: Path, cases: int) -> Path:
    """The copy the store is polled from and the changes are made in."""
    return workdir / f"source-{cases}-changing.db"


def database_name(cases: int, polled: bool = False) -> str:
    return f"watchdog_bench_{cases}" + ("_polled" if polled else "")


def store_url(args: argparse.Namespace) -> str:
    if args.store == "sqlite":
        return f"sqlite:///{(args.workdir / f'store-{args.cases}.db').resolve()}"
    return f"{args.pg_server}/{database_name(args.cases)}"


def write_config(args: argparse.Namespace) -> Path:
    """The shipped config.toml pointed at the bench's source and store."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    replacements = {
        'url = "sqlite:///var/watchdog.db"': f'url = "{store_url(args)}"',
        'url = "sqlite:///var/demo-source.db"': (
            f'url = "sqlite:///{working_source(args.workdir, args.cases).resolve()}"'
        ),
        'dir = "rules"': f'dir = "{ROOT / "rules"}"',
        'overrides = "calendar.toml"': f'overrides = "{ROOT / "calendar.toml"}"',
    }
    for old, new in replacements.items():
        if old not in text:
            raise SystemExit(f"config.toml: expected the line {old!r} to point it elsewhere")
        text = text.replace(old, new)
    # Notices are the next stage (issuing, rendering, the outbox), not evaluation: the
    # listener that issues them is left out of the figures.
    text = text.replace("[notices]\nenabled = true", "[notices]\nenabled = false")
    if args.workers is not None:  # else the default: one per core, at most four
        text = text.replace(
            'log_level = "INFO"', f'log_level = "INFO"\nevaluation_workers = {args.workers}', 1
        )
    path: Path = args.workdir / f"config-{args.store}-{args.cases}.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---- the store -------------------------------------------------------------------------


def _pg_admin(args: argparse.Namespace, *statements: str, database: str = "postgres") -> None:
    import psycopg

    url = args.pg_server.replace("postgresql+psycopg://", "postgresql://") + f"/{database}"
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement.encode())


def prepare_store(args: argparse.Namespace, config: Path) -> dict[str, Any]:
    """An upgraded store holding the polled source; figures of the poll if it ran."""
    polled_file = args.workdir / f"store-{args.cases}-polled.db"
    working = args.workdir / f"store-{args.cases}.db"
    name, template = database_name(args.cases), database_name(args.cases, polled=True)
    if args.store == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{working}{suffix}").unlink(missing_ok=True)
        if polled_file.exists() and not args.fresh:
            shutil.copyfile(polled_file, working)
            return {"poll_cached": 1}
    else:
        _pg_admin(args, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if args.fresh:
            _pg_admin(args, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
        try:
            _pg_admin(args, f"CREATE DATABASE {name} TEMPLATE {template}")
            _analyze(args, name)
            return {"poll_cached": 1}
        except Exception:  # no polled template yet (psycopg.errors.InvalidCatalogName)
            _pg_admin(args, f"CREATE DATABASE {name}")
    figures = run_child(args, config, "poll")
    if args.store == "sqlite":
        shutil.copyfile(working, polled_file)
    else:
        _analyze(args, name)
        if args.keep_polled:
            _pg_admin(args, f"CREATE DATABASE {template} TEMPLATE {name}")
    return figures


def _analyze(args: argparse.Namespace, name: str) -> None:
    """The tables as autovacuum keeps them on a server in service (it may be off on a
    test server): statistics, without which the planner guesses badly at this size, and
    the visibility map, without which an index-only scan (the covering index of steps)
    visits the table for every row."""
    _pg_admin(args, "VACUUM (ANALYZE)", database=name)


def drop_store(args: argparse.Namespace) -> None:
    if args.store == "postgresql":
        _pg_admin(args, f"DROP DATABASE IF EXISTS {database_name(args.cases)} WITH (FORCE)")
        if not args.keep_polled:
            template = database_name(args.cases, polled=True)
            _pg_admin(args, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")


# ---- the children ----------------------------------------------------------------------


def full_pass_done(config: Path) -> Path:
    """The file the evaluating child creates when its full pass has ended."""
    return config.with_suffix(".full-pass-done")


def run_child(args: argparse.Namespace, config: Path, step: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.evaluation", "--child", step, "--config", str(config)]
    command += ["--changes", str(args.changes)] + (["--profile"] if args.profile else [])
    # Output to files, not pipes: a child that logs a lot must not block on a full pipe.
    out = args.workdir / f"{step}-{args.store}-{args.cases}.out"
    err = args.workdir / f"{step}-{args.store}-{args.cases}.log"
    done = full_pass_done(config)
    done.unlink(missing_ok=True)
    with out.open("w") as stdout_file, err.open("w") as stderr_file:
        child = subprocess.Popen(command, stdout=stdout_file, stderr=stderr_file)
        while args.store == "postgresql" and step == "evaluate":
            # Autovacuum keeps the statistics of the tables an evaluation fills (it may be
            # off on a test server): without them PostgreSQL takes the growing violations
            # table for an empty one and looks scopes up by (source, rule) alone. Only
            # during the full pass: the child analyzes once after it, so that no ANALYZE
            # lands in the timed cycle (cycles of 0.64-1.46 s when one did).
            try:
                child.wait(timeout=AUTOVACUUM_NAPTIME)
                break
            except subprocess.TimeoutExpired:
                if not done.exists():
                    database = database_name(args.cases)
                    _pg_admin(args, f"ANALYZE {WRITTEN_TABLES}", database=database)
        child.wait()
    if child.returncode != 0:
        sys.stderr.write(err.read_text(encoding="utf-8")[-5000:])
        raise SystemExit(f"{step} step failed with exit status {child.returncode}; see {err}")
    stdout = out.read_text(encoding="utf-8")
    figures: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return figures


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_poll(config: Path) -> dict[str, Any]:
    from watchdog.app import Watchdog
    from watchdog.config import load_settings
    from watchdog.store.database import upgrade_store

    watchdog = Watchdog(load_settings(config), clock=lambda: FULL_AT)
    upgrade_store(watchdog.store)
    started = time.perf_counter()
    result = watchdog.poll("demo")
    figures = {
        "poll_seconds": time.perf_counter() - started,
        "poll_rows": result.rows_read,
        "poll_peak_mib": peak_mib(),
    }
    watchdog.close()
    return figures


@contextmanager
def pass_timer(seconds: dict[str, float]) -> Iterator[None]:
    """Record each rule pass's own seconds (its EvaluationResult) as Watchdog runs it."""
    from watchdog import app

    originals = {name: getattr(app, name) for name in PASSES if hasattr(app, name)}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            seconds[PASSES[name]] = result.seconds
            return result

        return run

    for name, function in originals.items():
        setattr(app, name, timed(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(app, name, function)


def child_evaluate(config: Path, changes: int, profile: bool) -> dict[str, Any]:
    from watchdog.app import Watchdog
    from watchdog.config import load_settings
    from watchdog.store.database import upgrade_store

    now = [FULL_AT]
    settings = load_settings(config)
    watchdog = Watchdog(settings, clock=lambda: now[0])
    # A polled store kept from an earlier run may be behind the code's migrations; a
    # migration that built an index leaves it in SQLite's write-ahead log, which the
    # first commit after it would copy back, inside the timed cycle: checkpoint now.
    upgrade_store(watchdog.store)
    if watchdog.store.dialect.name == "sqlite":
        with watchdog.store.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    figures: dict[str, Any] = {"rss_before_mib": peak_mib()}

    full_passes: dict[str, float] = {}
    profiler = cProfile.Profile() if profile else None
    with pass_timer(full_passes):
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        full = watchdog.evaluate("demo", FULL_AT, record=True, full=True)
        if profiler is not None:
            profiler.disable()
        figures["full_seconds"] = time.perf_counter() - started
    if full.errors:
        raise SystemExit(f"full evaluation failed: {full.errors}")
    figures["full_passes"] = full_passes
    figures["full_kinds"] = seconds_by_kind(watchdog, full)
    figures["full_cases"] = full.cases_evaluated
    figures["full_opened"] = full.counts.opened
    figures["full_peak_mib"] = peak_mib()
    figures["workers"] = settings.evaluation_workers
    # The worker processes of a split full pass have ended: the largest one's peak.
    figures["worker_peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(15)
        figures["profile"] = out.getvalue()

    full_pass_done(config).touch()
    if watchdog.store.dialect.name == "postgresql":
        # What autovacuum does after a pass that inserted 100,000s of rows, before the
        # cycle rather than during it (untimed).
        with watchdog.store.connect() as connection:
            connection.exec_driver_sql(f"ANALYZE {WRITTEN_TABLES}")
            connection.commit()
    if watchdog.store.dialect.name == "sqlite":
        # The cycle is measured as one in a daemon's steady state: the log of the million
        # rows the full pass wrote is copied back first (timed on its own), not by the
        # cycle's first commit.
        started = time.perf_counter()
        with watchdog.store.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        figures["checkpoint_seconds"] = time.perf_counter() - started
    figures.update(timed_cycle(watchdog, settings.source("demo").url, changes, now))
    figures["peak_mib"] = peak_mib()
    watchdog.close()
    return figures


def seconds_by_kind(watchdog: Any, result: Any) -> dict[str, float]:
    """Each rule kind's own seconds (judging and recording; in all processes of a split
    pass, added up), from the result's per-rule figures."""
    kinds = {rule.id: rule.kind for rule in watchdog.rules.rules}
    seconds: dict[str, float] = {}
    for rule_id, stats in result.rules.items():
        kind = kinds.get(rule_id, "other")
        seconds[kind] = seconds.get(kind, 0.0) + stats.seconds
    return seconds


def timed_cycle(
    watchdog: Any, source_url: str, changes: int, now: list[datetime]
) -> dict[str, Any]:
    """Change cases in the source and time one recording cycle (poll and evaluation)."""
    source = Path(source_url.removeprefix("sqlite:///"))
    figures: dict[str, Any] = {}
    figures["changed"] = change_cases(source, changes)
    cycle_passes: dict[str, float] = {}
    now[0] = CYCLE_AT
    with pass_timer(cycle_passes):
        started = time.perf_counter()
        report = watchdog.run_cycle("demo")
        figures["cycle_seconds"] = time.perf_counter() - started
    if report.error is not None or report.poll is None or report.evaluation is None:
        raise SystemExit(f"cycle failed: {report.error}")
    if report.evaluation.errors:
        raise SystemExit(f"cycle evaluation failed: {report.evaluation.errors}")
    figures["cycle_poll_seconds"] = report.poll.seconds
    figures["cycle_poll_rows_changed"] = report.poll.rows_changed
    figures["cycle_eval_seconds"] = report.evaluation.seconds
    figures["cycle_passes"] = cycle_passes
    figures["cycle_kinds"] = seconds_by_kind(watchdog, report.evaluation)
    figures["cycle_cases"] = report.evaluation.cases_evaluated
    counts = report.evaluation.counts
    figures["cycle_counts"] = [counts.opened, counts.upgraded, counts.resolved, counts.reopened]
    return figures


def change_cases(path: Path, changes: int) -> dict[str, int]:
    """Change `changes` cases as a working day's end would: half of them open cases that
    are completed now, the rest completed cases whose completion time is corrected; each
    gets a new step row. Cases are spread over the whole id range."""
    stamp = CHANGED_AT.strftime("%Y-%m-%d %H:%M:%S")
    db = sqlite3.connect(path)
    try:
        (newest,) = db.execute(
            "SELECT max(m) FROM (SELECT max(UPDATETIME) AS m FROM INFO_CASE"
            " UNION ALL SELECT max(UPDATETIME) FROM INFO_PROCESS)"
        ).fetchone()
        if newest is not None and newest >= stamp:
            raise SystemExit(f"the generated source has updates at {newest}, after {stamp}")
        rows = db.execute(
            "SELECT PROJID, BJSJ IS NULL FROM INFO_CASE WHERE ACCEPTDATE IS NOT NULL "
            "ORDER BY PROJID"
        ).fetchall()
        open_ids = [case_id for case_id, is_open in rows if is_open]
        done_ids = [case_id for case_id, is_open in rows if not is_open]
        opened = _spread(open_ids, min(len(open_ids), changes // 2))
        done = _spread(done_ids, changes - len(opened))
        with db:
            db.executemany(
                "UPDATE INFO_CASE SET BJSJ = ?, BJJG = '1', UPDATETIME = ? WHERE PROJID = ?",
                [(stamp, stamp, case_id) for case_id in opened],
            )
            db.executemany(
                "UPDATE INFO_CASE SET BJSJ = datetime(BJSJ, '+1 hour'), UPDATETIME = ? "
                "WHERE PROJID = ?",
                [(stamp, case_id) for case_id in done],
            )
            db.executemany(
                "INSERT INTO INFO_PROCESS VALUES (?, ?, ?, 'bench', ?, '1', ?)",
                [(f"{c}-bench", c, "办结", stamp, stamp) for c in opened]
                + [(f"{c}-bench", c, "送达", stamp, stamp) for c in done],
            )
    finally:
        db.close()
    return {"opened_cases_completed": len(opened), "completed_cases_corrected": len(done)}


def _spread(ids: list[str], count: int) -> list[str]:
    if count <= 0:
        return []
    step = len(ids) / count
    return [ids[int(i * step)] for i in range(count)]


# ---- the report ------------------------------------------------------------------------


def show(args: argparse.Namespace, poll: dict[str, Any], figures: dict[str, Any]) -> None:
    def passes(seconds: dict[str, float]) -> str:
        return ", ".join(f"{name} {value:.2f}s" for name, value in seconds.items())

    def mark(value: float, target: float) -> str:
        return "ok" if value < target else f"OVER the {target:g} target"

    gib = figures["peak_mib"] / 1024
    print(f"store:                    {args.store}, {args.cases:,} cases")
    if poll.get("poll_cached"):
        print("poll into empty store:    (polled store reused)")
    else:
        rows, seconds = poll["poll_rows"], poll["poll_seconds"]
        print(f"poll into empty store:    {seconds:.1f} s ({rows:,} rows, {rows / seconds:,.0f}/s,")
        print(f"                          peak {poll['poll_peak_mib']:,.0f} MiB, separate process)")
    profiled = " (under cProfile)" if args.profile else ""
    print(
        f"full evaluation:          {figures['full_seconds']:.1f} s{profiled}  "
        f"[{mark(figures['full_seconds'], 60)}]"
    )
    workers = figures["workers"]
    split = workers > 1 and figures["worker_peak_mib"] > 0
    where = f" (of this process's range, 1 of {workers})" if split else ""
    print(f"  passes:                 {passes(figures['full_passes'])}{where}")
    print(f"  rules by kind:          {passes(figures['full_kinds'])} (all processes)")
    print(
        f"  cases / opened:         {figures['full_cases']:,} / {figures['full_opened']:,} "
        "violations"
    )
    if "checkpoint_seconds" in figures:
        print(
            f"write-ahead log copied:   {figures['checkpoint_seconds']:.2f} s (after the full "
            "pass, before the cycle)"
        )
    print(
        f"changed in source:        {figures['changed']['opened_cases_completed']} open cases "
        f"completed, {figures['changed']['completed_cases_corrected']} completed corrected"
    )
    cycle = figures["cycle_poll_seconds"] + figures["cycle_eval_seconds"]
    print(f"incremental cycle:        {cycle:.2f} s  [{mark(cycle, 1)}]")
    print(
        f"  poll:                   {figures['cycle_poll_seconds']:.2f} s "
        f"({figures['cycle_poll_rows_changed']:,} rows changed)"
    )
    print(f"  evaluation:             {figures['cycle_eval_seconds']:.2f} s")
    print(f"  passes:                 {passes(figures['cycle_passes'])}")
    print(f"  rules by kind:          {passes(figures['cycle_kinds'])}")
    opened, upgraded, resolved, reopened = figures["cycle_counts"]
    print(
        f"  cases / changes:        {figures['cycle_cases']:,} looked at / opened {opened}, "
        f"upgraded {upgraded}, resolved {resolved}, reopened {reopened}"
    )
    print(f"  whole run_cycle:        {figures['cycle_seconds']:.2f} s (with rule reload check)")
    if split:
        # Each process peaks on its own; their sum bounds what the pass held at once.
        total = figures["peak_mib"] + (workers - 1) * figures["worker_peak_mib"]
        print(
            f"peak memory:              evaluator {figures['peak_mib']:,.0f} MiB, largest "
            f"worker {figures['worker_peak_mib']:,.0f} MiB; all {workers} processes at most "
            f"{total:,.0f} MiB  [{mark(total / 1024, 1)}]"
        )
        show_profile(figures)
        return
    print(
        f"peak memory (evaluator):  {figures['peak_mib']:,.0f} MiB "
        f"(after full pass {figures['full_peak_mib']:,.0f} MiB)  [{mark(gib, 1)}]"
    )
    show_profile(figures)


def show_profile(figures: dict[str, Any]) -> None:
    if "profile" in figures:
        print("\nfull evaluation, top 15 by cumulative time:")
        print(figures["profile"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workdir", type=Path, default=Path("var/bench"))
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="cProfile the full evaluation")
    parser.add_argument(
        "--workers", type=int, help="evaluation processes (default: as configured by default)"
    )
    parser.add_argument("--fresh", action="store_true", help="poll again, not a kept store")
    parser.add_argument(
        "--keep-polled", action="store_true", help="keep the polled PostgreSQL database"
    )
    parser.add_argument("--pg-server", default=PG_SERVER, help="PostgreSQL URL without database")
    parser.add_argument("--child", choices=("poll", "evaluate"), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        if args.child == "poll":
            figures = child_poll(args.config)
        else:
            figures = child_evaluate(args.config, args.changes, args.profile)
        print(json.dumps(figures))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    source = source_path(args.workdir, args.cases)
    if not source.exists():
        from watchdog.demo import generate_demo_source

        started = time.perf_counter()
        summary = generate_demo_source(source, cases=args.cases)
        print(f"generated {summary} in {time.perf_counter() - started:.1f}s")
    shutil.copyfile(source, working_source(args.workdir, args.cases))
    config = write_config(args)
    try:
        poll = prepare_store(args, config)
        figures = run_child(args, config, "evaluate")
    finally:
        drop_store(args)
    show(args, poll, figures)


if __name__ == "__main__":
    main()
