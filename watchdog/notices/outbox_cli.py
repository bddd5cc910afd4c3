"""`watchdog outbox [--failed] [--limit N]`: what the outbox holds, failures first in mind.

Operators see each delivery row with its notice number, recipient, state, attempts, the
time of the next attempt (pending) or of delivery (sent), and the last error: a
permanent failure shows the server's answer, an interrupted attempt says so.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from watchdog.config import load_settings
from watchdog.report import format_table
from watchdog.store import schema
from watchdog.store.database import create_store_engine, require_current_schema

STATES = ("pending", "sending", "sent", "failed")
MAX_ERROR_SHOWN = 120


def register(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    outbox = command("outbox", "list the notice deliveries (outbox) with their outcome")
    outbox.add_argument("--failed", action="store_true", help="only deliveries that failed")
    outbox.add_argument("--limit", type=int, default=50, help="rows shown, newest first (50)")
    outbox.set_defaults(handler=cmd_outbox)


def cmd_outbox(args: argparse.Namespace) -> int:
    settings = load_settings(Path(args.config))
    store = create_store_engine(settings.store_url)
    try:
        require_current_schema(store)
        print(outbox_listing(store, failed_only=args.failed, limit=max(args.limit, 0)))
    finally:
        store.dispose()
    return 0


def outbox_listing(store: Engine, *, failed_only: bool, limit: int) -> str:
    deliveries, notices = schema.deliveries, schema.notices
    query = (
        select(deliveries, notices.c.number)
        .join(notices)
        .order_by(deliveries.c.id.desc())
        .limit(limit)
    )
    if failed_only:
        query = query.where(deliveries.c.state == "failed")
    with store.connect() as connection:
        rows = connection.execute(query).all()
        counts: dict[str, int] = dict(
            connection.execute(
                select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
            ).all()
        )
    table = format_table(
        ("id", "notice", "recipient", "role", "state", "attempts", "when (UTC)", "last error"),
        (
            (
                r.id,
                r.number,
                r.recipient,
                r.role,
                _state(r.state, r.permanent, r.interruptions),
                r.attempts,
                _when(r.state, r.next_attempt_at, r.delivered_at, r.claimed_at),
                _short(r.last_error),
            )
            for r in rows
        ),
    )
    summary = ", ".join(f"{counts.get(state, 0)} {state}" for state in STATES)
    return f"{table}\n\ndeliveries: {summary}"


def _state(state: str, permanent: bool, interruptions: int) -> str:
    if state == "failed":
        state += " (permanent)" if permanent else " (gave up)"
    if interruptions:
        state += f", {interruptions} interrupted"
    return state


def _when(
    state: str,
    next_attempt_at: datetime | None,
    delivered_at: datetime | None,
    claimed_at: datetime | None,
) -> str:
    moment = {"pending": next_attempt_at, "sent": delivered_at}.get(state, claimed_at)
    if moment is None:
        return ""
    label = {"pending": "next ", "sending": "since "}.get(state, "")
    return label + moment.strftime("%Y-%m-%d %H:%M:%S")


def _short(error: str | None) -> str:
    if not error:
        return ""
    line = " ".join(error.split())
    return line if len(line) <= MAX_ERROR_SHOWN else line[: MAX_ERROR_SHOWN - 1] + "…"
