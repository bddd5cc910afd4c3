"""The `watchdog` command: run, evaluate, demo, db, violations, quarantine."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import make_url

from watchdog import __version__
from watchdog.app import Watchdog
from watchdog.calendar import CalendarError
from watchdog.config import ConfigError, Settings, load_settings
from watchdog.engine.findings import Finding
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
        failed = 0
        for source in settings.sources:
            report = watchdog.run_cycle(source.name)
            (log.error if report.error else log.info)("%s", report.summary())
            failed += report.error is not None
        watchdog.close()
        return 1 if failed else 0
    from watchdog.daemon import Daemon

    return Daemon(watchdog).run()


def cmd_evaluate(args: argparse.Namespace) -> int:
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
    if args.once:
        watchdog.close()
        return 0
    from watchdog.daemon import Daemon

    print("\nwatchdog is now running on the demo county; press Ctrl-C to stop.", flush=True)
    return Daemon(watchdog).run()


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

    directory = Path(args.dir) if args.dir else _settings(args).rules_dir
    rules = load_rules(directory)
    for problem in rules.problems:
        print(f"{directory}/{problem}")
    print(
        f"{len(rules.rules)} rule(s) loaded from {directory}, {len(rules.problems)} problem(s)",
        file=sys.stderr,
    )
    return 1 if rules.problems else 0


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
        "evaluate", "poll once and print the violations standing at an instant (writes none)"
    )
    evaluate.add_argument("--as-of", required=True, help="instant, e.g. 2026-06-30T18:00:00+08:00")
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

    violations = command("violations", "list the open violations recorded in the store")
    violations.add_argument("--format", choices=("table", "jsonl"), default="table")
    violations.set_defaults(handler=cmd_violations)

    rules = command("rules", "the rule files")
    rules.add_argument("rules_command", choices=("check",))
    rules.add_argument("dir", nargs="?", help="rules folder (default: the config's rules.dir)")
    rules.set_defaults(handler=cmd_rules)

    quarantine = command("quarantine", "list rows quarantined for breaking the contract")
    quarantine.add_argument("--limit", type=int, default=50)
    quarantine.set_defaults(handler=cmd_quarantine)
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
