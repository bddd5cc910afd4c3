"""`watchdog violations …`: list, show, export and summary of the recorded history.

`watchdog violations` without a sub-command keeps printing the open violations (the
handler the main parser passes in). Output is English for operators; names from the
sources (departments, matters) are shown as stored. A bad filter prints one line
naming the option and the value and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine

from watchdog.history import export, queries
from watchdog.history.filters import (
    DATE_FILTERS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_SORT,
    MAX_PAGE_SIZE,
    SEVERITIES,
    SORT_KEYS,
    STATES,
    TEXT_FILTERS,
    FilterError,
    Query,
    parse_query,
)
from watchdog.report import format_table

Command = Callable[[str, str], argparse.ArgumentParser]
Handler = Callable[[argparse.Namespace], int]

_FILTER_HELP = {
    "dept": "department code",
    "rule": "rule id",
    "kind": "rule kind (overdue, procedure, fee, inspection, ...)",
    "finding": "finding code (overdue, step_missing, over_standard, repeat, ...)",
    "severity": f"one of {', '.join(SEVERITIES)}",
    "state": f"one of {', '.join(STATES)}",
    "source": "source name",
    "case": "case id",
}


def register(command: Command, default_handler: Handler) -> None:
    """Add `violations` and its sub-commands through the main parser's `command` helper;
    `default_handler` serves the command given without a sub-command."""
    violations = command("violations", "violation history: list, show, export, summary")
    violations.add_argument("--format", choices=("table", "jsonl"), default="table")
    violations.set_defaults(handler=default_handler)
    sub = violations.add_subparsers(dest="violations_command", metavar="COMMAND")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--config", default=argparse.SUPPRESS, help="config file")
        return parser

    listing = action("list", "list violations (any state) matching the filters, one page")
    _filter_options(listing)
    listing.add_argument("--sort", default=DEFAULT_SORT, help=_sort_help())
    listing.add_argument("--page", default="1", help="page number (1)")
    listing.add_argument(
        "--page-size", default=str(DEFAULT_PAGE_SIZE), help=f"rows per page (max {MAX_PAGE_SIZE})"
    )
    listing.add_argument("--format", choices=("table", "jsonl"), default="table")
    listing.set_defaults(handler=cmd_list)

    show = action("show", "one violation: evidence, every event, its notices and deliveries")
    show.add_argument("id", help="violation id (from `violations list`)")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(handler=cmd_show)

    exporting = action("export", "every violation matching the filters, as CSV or JSONL")
    _filter_options(exporting)
    exporting.add_argument("--sort", default="id", help=_sort_help())
    exporting.add_argument("--format", choices=export.FORMATS, required=True)
    exporting.add_argument("--output", help="file to write (default: standard output)")
    exporting.set_defaults(handler=cmd_export)

    summary = action("summary", "violation counts by department (and month opened)")
    _filter_options(summary)
    summary.add_argument("--by", choices=queries.SUMMARY_GROUPINGS, default="dept-month")
    summary.add_argument("--format", choices=("table", "jsonl"), default="table")
    summary.set_defaults(handler=cmd_summary)


def _sort_help() -> str:
    return f"comma-separated keys among {', '.join(SORT_KEYS)}; '-' for descending"


def _filter_options(parser: argparse.ArgumentParser) -> None:
    for name in TEXT_FILTERS:
        parser.add_argument(
            f"--{name}",
            action="append",
            default=[],
            help=f"{_FILTER_HELP[name]} (repeat or comma-separate for several)",
        )
    for name in DATE_FILTERS:
        what, end = name.split("_")
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            help=f"{what} on or {'after' if end == 'from' else 'before'} this local date "
            "(YYYY-MM-DD, included)",
        )


def _query(args: argparse.Namespace, *, paged: bool) -> Query:
    params: dict[str, list[str]] = {}
    for name in TEXT_FILTERS:
        if getattr(args, name):
            params[name] = list(getattr(args, name))
    for name in DATE_FILTERS:
        if getattr(args, name) is not None:
            params[name] = [getattr(args, name)]
    params["sort"] = [args.sort]
    if paged:
        params["page"] = [args.page]
        params["page_size"] = [args.page_size]
    return parse_query(params)


def _option(error: FilterError) -> str:
    return f"--{error.parameter.replace('_', '-')}: {error.reason}"


def _store(args: argparse.Namespace) -> Engine:
    from watchdog.config import load_settings
    from watchdog.store.database import create_store_engine, require_current_schema

    store = create_store_engine(load_settings(Path(args.config)).store_url)
    require_current_schema(store)
    return store


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_list(args: argparse.Namespace) -> int:
    try:
        query = _query(args, paged=True)
    except FilterError as exc:
        return _fail(_option(exc))
    store = _store(args)
    with store.connect() as connection:
        page = queries.list_violations(connection, query.filter, query.sort, query.page)
    store.dispose()
    if args.format == "jsonl":
        for item in page.items:
            print(json.dumps(item, ensure_ascii=False, sort_keys=True))
        return 0
    print(
        format_table(
            ("id", "severity", "state", "dept", "rule", "finding", "case", "opened", "resolved"),
            (
                (
                    item["id"],
                    item["severity"],
                    item["state"],
                    item["dept_name"] or item["dept_code"],
                    item["rule"],
                    item["finding"] + (f" ({item['subject']})" if item["subject"] else ""),
                    item["case_id"],
                    _short(item["opened_at"]),
                    _short(item["resolved_at"]),
                )
                for item in page.items
            ),
        )
    )
    print(f"\npage {page.page.number} of {page.pages} ({page.total} violations)")
    return 0


def _short(moment: str | None) -> str:
    """`2026-03-09T18:00:00+08:00` → `2026-03-09 18:00` (local time)."""
    return moment[:16].replace("T", " ") if moment else ""


def cmd_show(args: argparse.Namespace) -> int:
    if not args.id.isascii() or not args.id.isdigit() or len(args.id) > 18:
        return _fail(f"show: expected a violation id (a whole number), got {args.id!r}")
    store = _store(args)
    with store.connect() as connection:
        detail = queries.violation_detail(connection, int(args.id))
    store.dispose()
    if detail is None:
        return _fail(f"violation {args.id} not found")
    if args.format == "json":
        print(json.dumps(detail, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        print_detail(detail, sys.stdout)
    return 0


def print_detail(detail: dict[str, Any], out: TextIO) -> None:
    d = detail
    print(
        f"violation {d['id']}: {d['kind']}/{d['finding']} ({d['rule']}), {d['severity']}, "
        f"{d['state']}",
        file=out,
    )
    for label, value in (
        ("source", d["source"]),
        ("case", d["case_id"]),
        ("subject", d["subject"]),
        ("department", f"{d['dept_name'] or ''} ({d['dept_code']})"),
        ("matter", f"{d['matter_name'] or ''} ({d['matter_code'] or ''})"),
        ("due date", d["due_date"]),
        ("provisional", "yes" if d["provisional"] else "no"),
        ("opened", _short(d["opened_at"])),
        ("last seen", _short(d["last_seen_at"])),
        ("resolved", _short(d["resolved_at"])),
    ):
        print(f"  {label + ':':13} {value if value is not None else ''}", file=out)
    print("\nevidence:", file=out)
    for key, value in sorted(d["evidence"].items()):
        print(f"  {key}: {json.dumps(value, ensure_ascii=False)}", file=out)
    print("\nevents:", file=out)
    print(
        format_table(
            ("at", "recorded", "actor", "event", "from", "to", "reason"),
            (
                (
                    _short(e["at"]),
                    _short(e["recorded_at"]),
                    e["actor"],
                    e["event"],
                    e["severity_from"],
                    e["severity_to"],
                    e["reason"],
                )
                for e in d["events"]
            ),
        ),
        file=out,
    )
    for notice in d["notices"]:
        print(
            f"\nnotice {notice['number']} ({notice['kind']}, {notice['severity']}): "
            f"{notice['state']}, issued {_short(notice['issued_at'])}, "
            f"deadline {notice['deadline'] or '-'}",
            file=out,
        )
        if notice["reply"]:
            print(f"  reply: {notice['reply']}", file=out)
        for e in notice["events"]:
            print(
                f"  {_short(e['at'])}  {e['actor']}: {e['event']} "
                f"({e['state_from'] or '-'} -> {e['state_to']})"
                + (f": {e['detail']}" if e["detail"] else ""),
                file=out,
            )
        for delivery in notice["deliveries"]:
            print(
                f"  delivery {delivery['role']} {delivery['recipient']}: {delivery['state']}"
                f", {delivery['attempts']} attempt(s)"
                + (
                    f", delivered {_short(delivery['delivered_at'])}"
                    if delivery["delivered_at"]
                    else ""
                )
                + (f", last error: {delivery['last_error']}" if delivery["last_error"] else ""),
                file=out,
            )
    if not d["notices"]:
        print("\nno notices", file=out)


def cmd_export(args: argparse.Namespace) -> int:
    try:
        query = _query(args, paged=False)
    except FilterError as exc:
        return _fail(_option(exc))
    store = _store(args)
    records = queries.iter_violations(store, query.filter, query.sort)
    if args.output:
        # newline="" keeps the CSV's CRLF line ends as written.
        with Path(args.output).open("w", encoding="utf-8", newline="") as out:
            count = export.write(records, args.format, out)
        print(f"{count} violation(s) written to {args.output}", file=sys.stderr)
    else:
        export.write(records, args.format, sys.stdout)
    store.dispose()
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    args.sort = DEFAULT_SORT
    try:
        query = _query(args, paged=False)
    except FilterError as exc:
        return _fail(_option(exc))
    store = _store(args)
    with store.connect() as connection:
        rows = queries.summary(connection, query.filter, args.by)
    store.dispose()
    if args.format == "jsonl":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, sort_keys=True))
        return 0
    columns = (
        "dept_code",
        "dept_name",
        *(("month",) if args.by == "dept-month" else ()),
        "total",
        "warning",
        "yellow",
        "red",
        "open",
        "resolved",
    )
    print(format_table(columns, ([row[c] for c in columns] for row in rows)))
    return 0
