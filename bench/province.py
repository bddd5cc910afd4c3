"""Benchmark: one PostgreSQL store for a province — 10,000,000 cases of 100 counties.

1. Create a database of its own (dropped first if a previous run left it) and migrate it.
2. County 000 is real: its cases are generated into a SQLite source and polled and
   evaluated by `Watchdog.run_cycle` (the first load and the first, full evaluation).
3. The other 99 counties are bulk: their cases are generated straight into the store
   with COPY (already polled: change_seq 1, an evaluated source_state), together with
   the evaluation state a daemon would have left — an overdue check per open case and
   a violation for every tenth case — so tables and indexes have a province's size.
4. `--changes` cases of county 000 change in its source (half the open ones completed,
   half get a new limit) and one cycle runs: poll and incremental evaluation are timed,
   `--rounds` times.
5. The store's size, per table with its indexes.

    python -m bench.province [--cases 10000000] [--counties 100] [--changes 1000]
                             [--pg-server postgresql+psycopg://postgres@127.0.0.1:5432]
                             [--workdir var/province] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from watchdog.app import Watchdog
from watchdog.config import load_settings
from watchdog.store.database import create_store_engine, upgrade_store

ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
DATABASE = "watchdog_province"
YEAR_START = datetime(2026, 1, 1, 9, 0, tzinfo=ZONE)
QUERY = """SELECT id AS case_id, matter AS matter_code, NULL AS matter_name, dept AS dept_code,
NULL AS dept_name, applicant AS applicant_id, accepted AS applied_at, accepted AS accepted_at,
lim AS promised_limit, NULL AS statutory_limit, 'W' AS limit_unit, completed AS completed_at,
NULL AS result, changed AS updated_at FROM cases"""
COPY_COLUMNS = (
    "source, case_id, matter_code, dept_code, applicant_id, applied_at, accepted_at, "
    "promised_limit, limit_unit, completed_at, updated_at, change_seq"
)


def county(n: int) -> str:
    return f"county-{n:03d}"


def case_row(chance: random.Random, n: int, now: datetime) -> tuple[Any, ...]:
    """One generated case: accepted during 2026 before `now`, 80 % of them completed."""
    accepted = YEAR_START + timedelta(minutes=chance.randrange(0, 330 * 24 * 60))
    limit = chance.choice((5, 10, 15, 20))
    completed = None
    if chance.random() < 0.8:
        completed = accepted + timedelta(days=chance.randrange(1, 35), hours=3)
        completed = completed if completed < now else None
    return (
        f"C{n:08d}",
        f"M{chance.randrange(200):03d}",
        f"3713310{chance.randrange(10, 40):02d}",
        f"A{chance.randrange(10**6):06d}",
        accepted,
        limit,
        completed,
    )


def make_source(path: Path, cases: int, now: datetime) -> None:
    """County 000's business database: a SQLite file, times naive in its zone."""
    path.unlink(missing_ok=True)
    chance = random.Random(0)

    def text(moment: datetime | None) -> str | None:
        return None if moment is None else moment.astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S")

    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE cases (id TEXT PRIMARY KEY, matter TEXT, dept TEXT, applicant TEXT, "
            "accepted TEXT, lim INTEGER, completed TEXT, changed TEXT)"
        )
        connection.executemany(
            "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                # Last changed when accepted or completed: only changes are re-read.
                (r[0], r[1], r[2], r[3], text(r[4]), r[5], text(r[6]), text(r[6] or r[4]))
                for r in (case_row(chance, n, now) for n in range(cases))
            ),
        )


def write_config(workdir: Path, url: str) -> Path:
    config = workdir / "province.toml"
    config.write_text(
        f'[store]\nurl = "{url}"\n\n[rules]\ndir = "{ROOT / "rules"}"\n\n'
        "[metrics]\nenabled = false\n\n"
        f'[[sources]]\nname = "{county(0)}"\nurl = "sqlite:///{workdir / "county-000.db"}"\n'
        f'poll_interval = "60s"\nbatch_size = 5000\n[sources.queries]\ncases = """{QUERY}"""\n',
        encoding="utf-8",
    )
    return config


def copy_bulk_counties(conninfo: str, counties: int, per_county: int, now: datetime) -> int:
    """COPY the cases of counties 1..counties-1 into the store; the rows copied."""
    chance = random.Random(1)
    updated = now.astimezone(UTC).isoformat()

    def value(v: Any) -> str:
        if v is None:
            return "\\N"
        if isinstance(v, datetime):
            return v.astimezone(UTC).isoformat()
        return str(v)

    copied = 0
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY cases ({COPY_COLUMNS}) FROM STDIN") as copy:
            for c in range(1, counties):
                name = county(c)
                buffer = io.StringIO()
                for n in range(per_county):
                    r = case_row(chance, n, now)
                    buffer.write(
                        f"{name}\t{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{value(r[4])}\t{value(r[4])}"
                        f"\t{r[5]}\tW\t{value(r[6])}\t{updated}\t1\n"
                    )
                copy.write(buffer.getvalue())
                copied += per_county
        # What a daemon would have left for them: evaluated state, due checks, violations.
        cursor.execute(
            "INSERT INTO source_state (source, poll_seq, evaluated_seq, evaluated_at, "
            "last_success_at, consecutive_failures) SELECT DISTINCT source, 1, 1, %s, %s, 0 "
            "FROM cases WHERE source <> %s",
            (now, now, county(0)),
        )
        cursor.execute(
            "INSERT INTO case_checks (source, pass, case_id, check_at) "
            "SELECT source, 'overdue', case_id, accepted_at + interval '30 days' FROM cases "
            "WHERE source <> %s AND completed_at IS NULL",
            (county(0),),
        )
        cursor.execute(
            "INSERT INTO violations (fingerprint, rule_id, kind, finding, source, case_id, "
            "scope_key, dept_code, severity, state, opened_at, last_seen_at, provisional, "
            "evidence) SELECT md5(source || '/' || case_id), 'overdue', 'overdue', 'late', "
            "source, case_id, case_id, dept_code, 'red', CASE WHEN completed_at IS NULL "
            "THEN 'open' ELSE 'resolved' END, accepted_at + interval '30 days', %s, false, "
            "'{}' FROM cases WHERE source <> %s AND right(case_id, 1) = '7'",
            (now, county(0)),
        )
        connection.commit()
    return copied


def change_cases(path: Path, changes: int, round_: int, now: datetime) -> None:
    """Complete half the changes' worth of open cases, give the other half a new limit."""
    stamp = now.astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(path) as connection:
        rest = changes - changes // 2
        connection.execute(
            "UPDATE cases SET lim = lim + 1, changed = ? WHERE id IN (SELECT id FROM cases "
            "WHERE completed IS NOT NULL ORDER BY id LIMIT ? OFFSET ?)",
            (stamp, rest, round_ * rest),
        )
        open_ids = [
            i
            for (i,) in connection.execute(
                "SELECT id FROM cases WHERE completed IS NULL ORDER BY id LIMIT ?",
                (changes // 2,),
            )
        ]
        connection.executemany(
            "UPDATE cases SET completed = ?, changed = ? WHERE id = ?",
            [(stamp, stamp, i) for i in open_ids],
        )


def sizes(conninfo: str) -> dict[str, Any]:
    with psycopg.connect(conninfo) as connection:
        database = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        tables = connection.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC LIMIT 8"
        ).fetchall()
    return {
        "database_bytes": int(database[0]) if database else 0,
        "tables": {name: {"total": int(total), "heap": int(heap)} for name, total, heap in tables},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    server = args.pg_server.rstrip("/")
    admin = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    conninfo = server.replace("postgresql+psycopg://", "postgresql://") + f"/{DATABASE}"
    url = f"{server}/{DATABASE}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE}"')
    figures: dict[str, Any] = {"cases": args.cases, "counties": args.counties}
    try:
        store = create_store_engine(url)
        upgrade_store(store)
        per_county = args.cases // args.counties
        now = datetime.now(UTC)
        # Absolute: the config written there names the source's file, and relative
        # paths in a config are taken from the config's own folder.
        args.workdir = args.workdir.resolve()
        args.workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        copied = copy_bulk_counties(conninfo, args.counties, per_county, now)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
        figures["bulk_copy"] = {"rows": copied, "seconds": round(time.monotonic() - started, 1)}
        print(
            f"bulk: {copied:,} cases of {args.counties - 1} counties "
            f"in {figures['bulk_copy']['seconds']} s",
            flush=True,
        )

        source = args.workdir / "county-000.db"
        make_source(source, per_county, now)
        watchdog = Watchdog(load_settings(write_config(args.workdir, url)), store)
        report = watchdog.run_cycle(county(0))
        assert report.error is None and report.poll and report.evaluation, report.summary()
        figures["first_cycle"] = {
            "poll_seconds": round(report.poll.seconds, 2),
            "evaluation_seconds": round(report.evaluation.seconds, 2),
            "rows": report.poll.rows_read,
        }
        print(f"county-000 first cycle: {report.summary()}", flush=True)
        rounds = []
        for round_ in range(args.rounds):
            change_cases(source, args.changes, round_, datetime.now(UTC))
            started = time.monotonic()
            report = watchdog.run_cycle(county(0))
            whole = time.monotonic() - started
            assert report.error is None and report.poll and report.evaluation, report.summary()
            print(f"incremental cycle {round_ + 1}: {report.summary()}", flush=True)
            rounds.append(
                {
                    "poll_seconds": round(report.poll.seconds, 3),
                    "evaluation_seconds": round(report.evaluation.seconds, 3),
                    "cycle_seconds": round(whole, 3),
                    "rows_changed": report.poll.rows_changed,
                    "cases_evaluated": report.evaluation.cases_evaluated,
                }
            )
        figures["incremental"] = rounds
        figures["incremental_median_seconds"] = statistics.median(
            r["cycle_seconds"] for r in rounds
        )
        watchdog.close()
        figures["size"] = sizes(conninfo)
    finally:
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000_000)
    parser.add_argument("--counties", type=int, default=100)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-server", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "province")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    figures = run(parser.parse_args())
    size = figures["size"]
    print(f"store size: {size['database_bytes'] / 2**30:.2f} GiB")
    for name, table in size["tables"].items():
        print(f"  {name:<18} {table['total'] / 2**30:6.2f} GiB ({table['heap'] / 2**30:.2f} heap)")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
