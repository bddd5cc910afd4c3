"""`watchdog notices …`: list, show, and the officers' transitions (ack, rectify, close,
reopen). Output is English for operators; the notice bodies are shown as stored (the
Chinese text that was sent). An unknown notice or an illegal transition prints one line
naming the notice and its state and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from watchdog.notices import lifecycle
from watchdog.notices.lifecycle import STATES, NoticeError
from watchdog.report import format_table
from watchdog.store import schema
from watchdog.store.database import create_store_engine, require_current_schema

ZONE = ZoneInfo("Asia/Shanghai")
Command = Callable[[str, str], argparse.ArgumentParser]


def register(command: Command) -> None:
    """Add `notices` and its subcommands, through the main parser's `command` helper
    (which gives each command its `--config`)."""
    notices = command("notices", "rectification notices (整改通知书): list, show, transitions")
    sub = notices.add_subparsers(dest="notices_command", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        # Also accepted after the subcommand; SUPPRESS keeps the value given before it.
        parser.add_argument("--config", default=argparse.SUPPRESS, help="config file")
        return parser

    listing = action("list", "list notices, newest first")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--dept", help="department code")
    listing.add_argument("--severity", choices=("warning", "yellow", "red"))
    listing.add_argument("--since", help="issued on or after (date or ISO time)")
    listing.add_argument("--until", help="issued before (date: before the end of that day)")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=cmd_list)

    show = action("show", "print a notice as sent, its events and its deliveries")
    show.add_argument("number")
    show.set_defaults(handler=cmd_show)

    for name, help_text in (
        ("ack", "the department acknowledged the notice"),
        ("close", "the supervision office closes a rectified notice"),
    ):
        parser = action(name, help_text)
        parser.add_argument("number")
        parser.add_argument("--by", required=True, help="who (recorded on the event)")
        parser.set_defaults(handler=cmd_transition)

    rectify = action("rectify", "record the department's rectification reply")
    rectify.add_argument("number")
    rectify.add_argument("--reply", required=True, help="the department's reply text")
    rectify.add_argument("--by", required=True)
    rectify.set_defaults(handler=cmd_transition)

    reopen = action("reopen", "reopen a rectified or closed notice (back to acknowledged)")
    reopen.add_argument("number")
    reopen.add_argument("--by", required=True)
    reopen.add_argument("--reason")
    reopen.set_defaults(handler=cmd_transition)


def _store(args: argparse.Namespace) -> Engine:
    from watchdog.config import load_settings

    settings = load_settings(Path(args.config))
    store = create_store_engine(settings.store_url)
    require_current_schema(store)
    return store


def _bound(text: str | None, *, end: bool) -> datetime | None:
    """A --since/--until value: a date (its start, or for --until its end) or an instant."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), tzinfo=ZONE)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise NoticeError(f'expected a date or time like "2026-03-17", got "{text}"') from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZONE)


def _local(moment: datetime | None) -> str:
    return moment.astimezone(ZONE).strftime("%Y-%m-%d %H:%M") if moment else ""


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    n, nv = schema.notices, schema.notice_violations
    referred = n.alias("referred")
    count = select(func.count()).where(nv.c.notice_id == n.c.id).correlate(n).scalar_subquery()
    query = (
        select(n, count.label("violations"), referred.c.number.label("refers_to"))
        .outerjoin(referred, referred.c.id == n.c.refers_to_id)
        .order_by(n.c.issued_at.desc(), n.c.id.desc())
        .limit(max(args.limit, 0))
    )
    try:
        since, until = _bound(args.since, end=False), _bound(args.until, end=True)
    except NoticeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.state:
        query = query.where(n.c.state == args.state)
    if args.dept:
        query = query.where(n.c.dept_code == args.dept)
    if args.severity:
        query = query.where(n.c.severity == args.severity)
    if since is not None:
        query = query.where(n.c.issued_at >= since)
    if until is not None:
        query = query.where(n.c.issued_at < until)
    with store.connect() as connection:
        rows = connection.execute(query).all()
    store.dispose()
    print(
        format_table(
            (
                "number",
                "kind",
                "state",
                "severity",
                "dept",
                "issued",
                "deadline",
                "cases",
                "refers to",
            ),
            (
                (
                    r.number,
                    r.kind,
                    r.state,
                    r.severity,
                    r.dept_code,
                    _local(r.issued_at),
                    r.deadline or "",
                    r.violations,
                    r.refers_to or "",
                )
                for r in rows
            ),
        )
    )
    return 0


def show_notice(store: Engine, number: str) -> str:
    """The notice as stored: header, text body, events and deliveries."""
    n, e, d = schema.notices, schema.notice_events, schema.deliveries
    with store.connect() as connection:
        notice = lifecycle.find_notice(connection, number)
        referred = None
        if notice.refers_to_id is not None:
            referred = connection.execute(
                select(n.c.number).where(n.c.id == notice.refers_to_id)
            ).scalar_one()
        events = connection.execute(
            select(e).where(e.c.notice_id == notice.id).order_by(e.c.at, e.c.id)
        ).all()
        deliveries = connection.execute(
            select(d).where(d.c.notice_id == notice.id).order_by(d.c.role.desc(), d.c.id)
        ).all()
    lines = [
        f"notice {notice.number} ({notice.kind}), state {notice.state}, severity "
        f"{notice.severity}, department {notice.dept_code} {notice.dept_name or ''}".rstrip(),
        f"issued {_local(notice.issued_at)}"
        + (f", deadline {notice.deadline}" if notice.deadline else "")
        + (f", escalated {_local(notice.escalated_at)}" if notice.escalated_at else "")
        + (f", refers to {referred}" if referred else ""),
        f"subject: {notice.subject}",
    ]
    if notice.reply:
        lines.append(f"reply: {notice.reply}")
    lines += ["", notice.body_text.rstrip(), "", "events:"]
    lines += [
        f"  {_local(ev.at)}  {ev.event:<12} {ev.state_from or '-'} -> {ev.state_to or '-'}"
        f"  by {ev.actor}" + (f": {ev.detail}" if ev.detail else "")
        for ev in events
    ]
    lines += ["", "deliveries:"]
    table = format_table(
        ("recipient", "role", "state", "attempts", "last error", "delivered"),
        (
            (
                row.recipient,
                row.role,
                row.state + (" (permanent)" if row.permanent and row.state == "failed" else ""),
                row.attempts,
                row.last_error or "",
                _local(row.delivered_at),
            )
            for row in deliveries
        ),
    )
    lines += [f"  {line}" for line in table.splitlines()] if deliveries else ["  (none)"]
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        print(show_notice(store, args.number))
    except NoticeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.dispose()
    return 0


def cmd_transition(args: argparse.Namespace) -> int:
    store = _store(args)
    now = datetime.now(UTC)
    action = args.notices_command
    calls: dict[str, Callable[[Any], str]] = {
        "ack": lambda c: lifecycle.acknowledge(c, args.number, by=args.by, at=now),
        "rectify": lambda c: lifecycle.rectify(
            c, args.number, reply=args.reply, by=args.by, at=now
        ),
        "close": lambda c: lifecycle.close(c, args.number, by=args.by, at=now),
        "reopen": lambda c: lifecycle.reopen(
            c, args.number, by=args.by, at=now, reason=args.reason
        ),
    }
    try:
        with store.begin() as connection:
            before = calls[action](connection)
            state = connection.execute(
                select(schema.notices.c.state).where(schema.notices.c.number == args.number)
            ).scalar_one()
    except NoticeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.dispose()
    print(f"notice {args.number}: {before} -> {state} (by {args.by})")
    return 0


def notice_summary(store: Engine) -> str:
    """Notices by state, one line, for the demo: `整改通知书: issued 12, delivered 3`."""
    n = schema.notices
    with store.connect() as connection:
        counts: dict[str, int] = {
            row[0]: row[1]
            for row in connection.execute(select(n.c.state, func.count()).group_by(n.c.state))
        }
        kinds: dict[str, int] = {
            row[0]: row[1]
            for row in connection.execute(select(n.c.kind, func.count()).group_by(n.c.kind))
        }
    if not counts:
        return "整改通知书: none issued"
    states = ", ".join(f"{state} {counts[state]}" for state in STATES if state in counts)
    total = sum(counts.values())
    escalations = kinds.get("escalation", 0)
    return f"整改通知书: {total} ({escalations} escalation) by state: {states}"
