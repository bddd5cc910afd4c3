"""Benchmark: what the audit trail costs a large reconcile, and verifying it.

For `--violations` overdue findings (evidence as the overdue rule writes it), on SQLite
or PostgreSQL:

1. the audit entries of that many `opened` changes appended in one transaction on an
   empty store: building the entries, hashing them (pure Python, sequential), and the
   whole append with its commit;
2. `verify` and a JSONL export of that chain;
3. with `--reconcile`: one `reconcile` opening them all, without and with the audit
   listener, each on a fresh store (what a full evaluation pays).

    python -m bench.audit_append --store sqlite|postgresql [--violations 100000] [--reconcile]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from watchdog.audit.chain import GENESIS, append, chain_rows
from watchdog.audit.export import write_jsonl
from watchdog.audit.hooks import audit_violation_changes, violation_entries
from watchdog.audit.verify import stored_entries, verify_store
from watchdog.clock import Severity
from watchdog.engine.findings import Finding
from watchdog.store.database import create_store_engine, upgrade_store
from watchdog.violations import Scope, ViolationChange, reconcile

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AT = datetime(2026, 2, 10, 10, tzinfo=UTC)


def findings(count: int) -> list[Finding]:
    accepted = date(2026, 1, 5)
    return [
        Finding(
            rule_id="overdue",
            kind="overdue",
            finding="overdue",
            source="demo",
            case_id=f"371331-2026-{i:07d}",
            subject=None,
            dept_code="SCJGJ",
            severity=Severity.YELLOW,
            due_date=accepted + timedelta(days=28),
            provisional=False,
            evidence={
                "matter_code": "371331006-XK-003",
                "matter_name": "排污许可证核发",
                "dept_name": "东阳县生态环境局",
                "accepted_on": accepted.isoformat(),
                "unit": "W",
                "promised_limit": 20,
                "statutory_limit": 30,
                "extension_days": 0,
                "pauses": [],
                "due_date": "2026-02-02",
                "statutory_due_date": "2026-02-27",
                "red_due_date": "2026-02-27",
                "completed_on": None,
                "evaluated_on": "2026-02-10",
                "counted_days": 25,
                "days_late": 5,
                "remaining_days": None,
                "provisional": False,
                "calendar_coverage_end": "2026-12-31",
            },
        )
        for i in range(count)
    ]


def fresh_store(kind: str, folder: Path, name: str) -> tuple[Engine, str | None]:
    """An empty migrated store, and the PostgreSQL schema made for it (to drop)."""
    schema = None
    if kind == "sqlite":
        store = create_store_engine(f"sqlite:///{folder / name}.db")
    else:
        schema = f"bench_audit_{name}_{uuid.uuid4().hex[:6]}"
        with create_engine(PG_ADMIN).begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        store = create_store_engine(f"{PG_ADMIN}?options=-csearch_path%3D{schema}")
    upgrade_store(store)
    return store, schema


def drop(store: Engine, schema: str | None) -> None:
    store.dispose()
    if schema:
        with create_engine(PG_ADMIN).begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def timed_reconcile(store: Engine, found: list[Finding], audited: bool) -> float:
    scope = Scope("overdue", "demo", [f.scope_key for f in found])
    start = time.perf_counter()
    with store.begin() as connection:
        reconcile(
            connection,
            scope,
            found,
            at=AT,
            now=AT,
            listener=audit_violation_changes if audited else None,
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--violations", type=int, default=100_000)
    parser.add_argument("--reconcile", action="store_true")
    args = parser.parse_args()
    count = args.violations
    found = findings(count)
    changes = [
        ViolationChange(i, "opened", None, f.severity.value, f, AT)
        for i, f in enumerate(found, start=1)
    ]
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        start = time.perf_counter()
        entries = violation_entries(changes)
        build = time.perf_counter() - start
        start = time.perf_counter()
        chain_rows(entries, 0, GENESIS, AT)
        hashing = time.perf_counter() - start
        store, schema = fresh_store(args.store, folder, "append")
        start = time.perf_counter()
        with store.begin() as connection:
            append(connection, entries)
        appending = time.perf_counter() - start
        start = time.perf_counter()
        result = verify_store(store)
        verifying = time.perf_counter() - start
        assert result.ok and result.entries == count, result.summary()
        start = time.perf_counter()
        write_jsonl(stored_entries(store), io.StringIO())
        exporting = time.perf_counter() - start
        drop(store, schema)
        print(
            f"{args.store}, {count} entries: build {build:.2f}s, serialize+hash "
            f"{hashing:.2f}s, append with commit {appending:.2f}s "
            f"({appending / count * 1e6:.0f} µs/entry); verify {verifying:.2f}s, "
            f"export {exporting:.2f}s"
        )
        if args.reconcile:
            plain, plain_schema = fresh_store(args.store, folder, "plain")
            without = timed_reconcile(plain, found, audited=False)
            drop(plain, plain_schema)
            audited, audited_schema = fresh_store(args.store, folder, "audited")
            with_audit = timed_reconcile(audited, found, audited=True)
            drop(audited, audited_schema)
            print(
                f"{args.store}: reconcile opening {count} violations: {without:.2f}s without "
                f"audit, {with_audit:.2f}s with ({with_audit - without:+.2f}s)"
            )


if __name__ == "__main__":
    main()
