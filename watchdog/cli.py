"""The `watchdog` command: run, evaluate, demo, db, violations, quarantine."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import make_url

from watchdog import __version__
from watchdog.app import Watchdog
from watchdog.calendar import CalendarError
from watchdog.config import ConfigError, Settings, load_settings
from watchdog.engine.findings import Finding
from watchdog.notices.delivery import DeliveryReport
from watchdog.report import (
    findings_table,
    format_table,
    severity_summary,
    write_jsonl,
)
from watchdog.sources.poller import SourceError
from watchdog.store import schema
from watchdog.store.database import (
    StoreSchemaError,
    create_store_engine,
    current_revision,
    head_revision,
    require_current_schema,
    upgrade_store,
)

log = logging.getLogger("watchdog")
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")


class UsageError(Exception):
    """A command-line argument that cannot be used; the message says which and why."""


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant; without an offset it is taken in Asia/Shanghai."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f'--as-of: expected a time like "2026-06-30T18:00:00+08:00", got "{text}"'
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=DEFAULT_ZONE)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config))


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic and APScheduler narrate every connection and run at INFO; the daemon's own
    # one line per cycle is what operators read.
    for noisy in ("alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings.log_level)
    watchdog = Watchdog(settings)
    require_current_schema(watchdog.store)
    if args.once:
        from watchdog.leadership import StoreInUseError, lock_sqlite_store

        try:  # a SQLite store takes one writer process: not beside a running daemon
            store_lock = lock_sqlite_store(watchdog.store)
        except StoreInUseError as exc:
            watchdog.close()
            raise UsageError(str(exc)) from None
        failed = 0
        for source in settings.sources:
            report = watchdog.run_cycle(source.name)
            (log.error if report.error else log.info)("%s", report.summary())
            failed += report.error is not None
        watchdog.close()
        if store_lock is not None:
            store_lock.release()
        return 1 if failed else 0
    from watchdog.daemon import Daemon

    return Daemon(watchdog).run()


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.full:
        if args.as_of is not None:
            raise UsageError("evaluate --full records at the current time; it takes no --as-of")
        return cmd_evaluate_full(args)
    if args.as_of is None:
        raise UsageError("evaluate: --as-of is required (or --full to re-evaluate and record now)")
    as_of = parse_instant(args.as_of)
    settings = _settings(args)
    _configure_logging("WARNING")
    watchdog = Watchdog(settings)
    require_current_schema(watchdog.store)
    findings = []
    failed = False
    for source in settings.sources:
        try:
            if not args.no_poll:
                watchdog.poll(source.name)
            findings += watchdog.evaluate(source.name, as_of, record=False).findings
        except SourceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
    watchdog.close()
    if args.format == "jsonl":
        write_jsonl(findings, sys.stdout)
    else:
        print(findings_table(findings))
        print()
        print(severity_summary(findings))
    return 1 if failed else 0


def cmd_evaluate_full(args: argparse.Namespace) -> int:
    """Poll, then re-evaluate every case of every source now and record the changes."""
    settings = _settings(args)
    _configure_logging("WARNING")
    watchdog = Watchdog(settings)
    require_current_schema(watchdog.store)
    failed = False
    for source in settings.sources:
        try:
            if not args.no_poll:
                watchdog.poll(source.name)
            now = watchdog.clock()
            result = watchdog.evaluate(source.name, now, record=True, full=True)
        except SourceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        counts, local = result.counts, now.astimezone(source.timezone)
        print(
            f'source "{source.name}": full evaluation at {local.isoformat(sep=" ")} of '
            f"{result.cases_evaluated} cases: violations opened {counts.opened}, "
            f"upgraded {counts.upgraded}, resolved {counts.resolved}, reopened {counts.reopened}"
        )
        for error in result.errors:
            print(f'error: source "{source.name}": {error}', file=sys.stderr)
        failed = failed or bool(result.errors)
    watchdog.close()
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from watchdog.demo import generate_demo_source

    settings = _settings(args)
    _configure_logging(settings.log_level)
    source = settings.sources[0]
    url = make_url(source.url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise UsageError(f"demo: sources[0].url must be a SQLite file, got {source.url}")
    path = Path(url.database)
    if args.regenerate or not path.exists():
        log.info("generating the demo county (%d cases) into %s", args.cases, path)
        summary = generate_demo_source(path, cases=args.cases, seed=args.seed)
        log.info("demo source ready: %s", summary)
    store = create_store_engine(settings.store_url)
    upgrade_store(store)
    watchdog = Watchdog(settings, store)
    report = watchdog.run_cycle(source.name)
    print(report.summary())
    if report.error:
        return 1
    open_findings = _open_violation_findings(watchdog)
    print()
    print("演示县当前在办违规（按部门、等级）:")
    print(severity_summary(open_findings))
    if watchdog.notices is not None:
        from watchdog.notices.cli import notice_summary

        if args.once:  # the daemon's delivery job would do this; --once does it once here
            print(_deliver_once(watchdog).summary())
        print(notice_summary(watchdog.store))
    if args.once:
        watchdog.close()
        return 0
    from watchdog.daemon import Daemon

    print("\nwatchdog is now running on the demo county; press Ctrl-C to stop.", flush=True)
    return Daemon(watchdog).run()


def _deliver_once(watchdog: Watchdog) -> DeliveryReport:
    from watchdog.notices.delivery import Outbox
    from watchdog.notices.senders import build_sender

    mail = watchdog.settings.mail
    return Outbox(watchdog.store, mail, build_sender(mail)).run()


def _open_violation_findings(watchdog: Watchdog) -> list[Finding]:
    from watchdog.violations_query import open_findings

    return list(open_findings(watchdog.store))


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = create_store_engine(settings.store_url)
    where = store.url.render_as_string(hide_password=True)
    if args.db_command == "upgrade":
        before, after = upgrade_store(store)
        print(f"store {where}: schema {before or 'empty'} -> {after}")
    else:
        current, head = current_revision(store), head_revision()
        state = "up to date" if current == head else "behind: run `watchdog db upgrade`"
        print(f"store {where}: schema {current or 'empty'}, newest {head} ({state})")
    store.dispose()
    return 0


def cmd_violations(args: argparse.Namespace) -> int:
    from watchdog.violations_query import open_findings

    settings = _settings(args)
    store = create_store_engine(settings.store_url)
    require_current_schema(store)
    findings = list(open_findings(store))  # both outputs sort
    if args.format == "jsonl":
        write_jsonl(findings, sys.stdout)
    else:
        print(findings_table(findings))
        print()
        print(severity_summary(findings))
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from watchdog.engine.rulefiles import load_rules

    if args.rules_command == "test":
        return cmd_rules_test(args)
    if args.start or args.end or args.limit is not None:
        raise UsageError("rules check: --from, --to and --limit belong to rules test")
    directory = Path(args.dir) if args.dir else _settings(args).rules_dir
    rules = load_rules(directory)
    for problem in rules.problems:
        print(f"{directory}/{problem}")
    print(
        f"{len(rules.rules)} rule(s) loaded from {directory}, {len(rules.problems)} problem(s)",
        file=sys.stderr,
    )
    return 1 if rules.problems else 0


def parse_day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f'{option}: expected a date like "2026-06-30", got "{text}"') from None


def cmd_rules_test(args: argparse.Namespace) -> int:
    """Backtest one rule file over the stored history (writes nothing)."""
    from watchdog.backtest_report import rules_test

    if not args.dir:
        raise UsageError("rules test: the rule file to test is required")
    start, end = parse_day(args.start, "--from"), parse_day(args.end, "--to")
    if start and end and start > end:
        raise UsageError(f"rules test: --from {start} is after --to {end}")
    limit = 20 if args.limit is None else args.limit
    if limit < 0:
        raise UsageError(f"rules test: --limit must be 0 or more, got {limit}")
    settings = _settings(args)
    _configure_logging("WARNING")
    return rules_test(settings, Path(args.dir), start=start, end=end, limit=limit)


def cmd_quarantine(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = create_store_engine(settings.store_url)
    require_current_schema(store)
    table = schema.quarantine
    with store.connect() as connection:
        rows = connection.execute(
            select(table).order_by(table.c.last_seen_at.desc()).limit(args.limit)
        ).all()
    print(
        format_table(
            ("source", "entity", "key", "reason", "first seen", "times"),
            (
                (r.source, r.entity, r.row_key, r.reason, r.first_seen_at, r.times_seen)
                for r in rows
            ),
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchdog", description="E-supervision of administrative approval (行政审批电子监察)."
    )
    parser.add_argument("--version", action="version", version=f"watchdog {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", default="config.toml", help="config file (config.toml)")
        return sub

    run = command("run", "run the daemon: poll and evaluate every source at its interval")
    run.add_argument("--once", action="store_true", help="one cycle of every source, then exit")
    run.set_defaults(handler=cmd_run)

    evaluate = command(
        "evaluate",
        "poll once and print the violations standing at an instant (writes none); "
        "--full: re-evaluate every case now and record",
    )
    evaluate.add_argument("--as-of", help="instant, e.g. 2026-06-30T18:00:00+08:00")
    evaluate.add_argument(
        "--full", action="store_true", help="re-evaluate every case now and record the changes"
    )
    evaluate.add_argument("--format", choices=("table", "jsonl"), default="table")
    evaluate.add_argument("--no-poll", action="store_true", help="evaluate the store as it is")
    evaluate.set_defaults(handler=cmd_evaluate)

    demo = command("demo", "generate the demo county and run the daemon on it")
    demo.add_argument("--cases", type=int, default=30_000, help="cases to generate (30000)")
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--regenerate", action="store_true", help="regenerate existing demo data")
    demo.add_argument("--once", action="store_true", help="one cycle, print, exit")
    demo.set_defaults(handler=cmd_demo)

    db = command("db", "the store's schema")
    db.add_argument("db_command", choices=("upgrade", "status"))
    db.set_defaults(handler=cmd_db)

    from watchdog.history.cli import register as register_violation_commands

    # Without a sub-command `violations` lists the open violations (cmd_violations).
    register_violation_commands(command, cmd_violations)

    rules = command("rules", "the rule files: check a folder, or backtest one file (test)")
    rules.add_argument("rules_command", choices=("check", "test"))
    rules.add_argument(
        "dir",
        nargs="?",
        metavar="PATH",
        help="check: rules folder (default: the config's rules.dir); test: the rule file",
    )
    rules.add_argument(
        "--from", dest="start", metavar="DATE", help="test: cases accepted from this date"
    )
    rules.add_argument("--to", dest="end", metavar="DATE", help="test: up to this date (now)")
    rules.add_argument("--limit", type=int, metavar="N", help="test: rows shown per section (20)")
    rules.set_defaults(handler=cmd_rules)

    quarantine = command("quarantine", "list rows quarantined for breaking the contract")
    quarantine.add_argument("--limit", type=int, default=50)
    quarantine.set_defaults(handler=cmd_quarantine)

    from watchdog.notices.cli import register as register_notice_commands

    register_notice_commands(command)
    from watchdog.notices.outbox_cli import register as register_outbox_command

    register_outbox_command(command)
    from watchdog.audit.cli import register as register_audit_commands

    register_audit_commands(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    except (CalendarError, StoreSchemaError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
