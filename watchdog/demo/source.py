"""Write the synthetic county as a SQLite front-end exchange database (前置库)."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from pathlib import Path

from watchdog.demo.cases import CaseMaker, Row, Sink
from watchdog.demo.days import Days
from watchdog.demo.inspections import Inspections
from watchdog.demo.people import enterprises

# Column definitions of the exchange tables, in order (names as the standard spells them).
TABLES: dict[str, tuple[str, ...]] = {
    "INFO_CASE": (
        "PROJID TEXT PRIMARY KEY",
        "ITEMNO TEXT NOT NULL",
        "ITEMNAME TEXT NOT NULL",
        "ACCEPTDEPTCODE TEXT NOT NULL",
        "ACCEPTDEPTNAME TEXT NOT NULL",
        "APPLICANTCODE TEXT",
        "APPLYDATE TEXT NOT NULL",
        "ACCEPTDATE TEXT",
        "PROMISETIMELIMIT INTEGER NOT NULL",
        "PROMISETIMEUNIT TEXT NOT NULL",
        "TIMELIMIT INTEGER",
        "BJSJ TEXT",
        "BJJG TEXT",
        "UPDATETIME TEXT NOT NULL",
    ),
    "INFO_PROCESS": (
        "PROCID TEXT PRIMARY KEY",
        "PROJID TEXT NOT NULL",
        "NODENAME TEXT NOT NULL",
        "NODEPROCER TEXT",
        "NODEENDTIME TEXT",
        "NODERESULT TEXT",
        "UPDATETIME TEXT NOT NULL",
    ),
    "INFO_SPECIAL": (
        "TBCXID TEXT PRIMARY KEY",
        "PROJID TEXT NOT NULL",
        "TBCXZL TEXT NOT NULL",
        "TBCXKSRQ TEXT NOT NULL",
        "TBCXJSRQ TEXT",
        "TBCXSX INTEGER",
        "UPDATETIME TEXT NOT NULL",
    ),
    "INFO_FEE": (
        "SFID TEXT PRIMARY KEY",
        "PROJID TEXT NOT NULL",
        "SFXMBM TEXT NOT NULL",
        "SFXMMC TEXT",
        "SFJE TEXT NOT NULL",
        "SFSJ TEXT NOT NULL",
        "UPDATETIME TEXT NOT NULL",
    ),
    "INFO_INSPECT": (
        "JCID TEXT PRIMARY KEY",
        "TYSHXYDM TEXT NOT NULL",
        "QYMC TEXT",
        "JCBMBM TEXT NOT NULL",
        "JCSJ TEXT NOT NULL",
        "JCLX TEXT NOT NULL",
        "LHJCBH TEXT",
        "UPDATETIME TEXT NOT NULL",
    ),
}
_CHILDREN = ("INFO_PROCESS", "INFO_SPECIAL", "INFO_FEE")


@dataclass(frozen=True)
class DemoSummary:
    """How many rows of each kind the demo source holds."""

    cases: int
    steps: int
    pauses: int
    fees: int
    inspections: int


class _Writer:
    """Batched executemany into the exchange tables, counting rows."""

    def __init__(self, db: sqlite3.Connection, batch_size: int) -> None:
        self.db, self.batch_size = db, batch_size
        self.counts = dict.fromkeys(TABLES, 0)
        self.sql = {
            t: f"INSERT INTO {t} VALUES ({','.join('?' * len(c))})" for t, c in TABLES.items()
        }

    def write(self, table: str, rows: list[Row], force: bool = False) -> None:
        """Insert full batches from the front of `rows` (and the rest when forced)."""
        size = self.batch_size
        while len(rows) >= size or (force and rows):
            batch = rows[:size]
            self.db.executemany(self.sql[table], batch)
            self.counts[table] += len(batch)
            del rows[:size]

    def sink(self, sink: Sink, force: bool = False) -> None:
        self.write("INFO_CASE", sink.cases, force)
        self.write("INFO_PROCESS", sink.steps, force)
        self.write("INFO_SPECIAL", sink.pauses, force)
        self.write("INFO_FEE", sink.fees, force)


def _day_weights(days: Days) -> list[float]:
    """Relative application volume per day: Mondays and days after long breaks are busy."""
    weekday = (1.25, 1.1, 1.0, 1.0, 0.85, 0.75, 0.75)
    out: list[float] = []
    for i in range(days.last + 1):
        if not days.work[i]:
            out.append(0.05)  # online applications only
            continue
        d = days.dates[i]
        w = weekday[d.weekday()] * (1.1 if d.month == 12 else 0.9 if d.month == 2 else 1.0)
        if i >= 3 and not any(days.work[i - 3 : i]):
            w *= 1.5
        out.append(w)
    return out


def _day_counts(rng: random.Random, days: Days, cases: int) -> list[int]:
    cum = list(accumulate(_day_weights(days)))
    population = range(len(cum))
    counts = [0] * len(cum)
    left = cases
    while left > 0:
        chunk = min(left, 100_000)
        for i in rng.choices(population, cum_weights=cum, k=chunk):
            counts[i] += 1
        left -= chunk
    return counts


def _remove(path: Path) -> None:
    for p in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
        p.unlink(missing_ok=True)


def generate_demo_source(
    path: Path,
    *,
    cases: int = 30_000,
    seed: int = 2026,
    start: date = date(2025, 1, 1),
    end: date = date(2026, 12, 31),
    batch_size: int = 10_000,
) -> DemoSummary:
    """(Re)create `path` as the county's exchange database and say what it holds.

    The same arguments always give the same rows. Nothing is dated after `end`.
    """
    if cases < 0 or batch_size < 1 or end < start:
        raise ValueError("need cases >= 0, batch_size >= 1 and start <= end")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    _remove(partial)
    db = sqlite3.connect(partial)
    try:
        counts = _fill(db, Days(start, end), random.Random(seed), cases, batch_size)
        db.close()
    except BaseException:
        db.close()
        _remove(partial)
        raise
    _remove(path)
    partial.replace(path)
    return DemoSummary(
        cases=counts["INFO_CASE"],
        steps=counts["INFO_PROCESS"],
        pauses=counts["INFO_SPECIAL"],
        fees=counts["INFO_FEE"],
        inspections=counts["INFO_INSPECT"],
    )


def _fill(
    db: sqlite3.Connection, days: Days, rng: random.Random, cases: int, batch_size: int
) -> dict[str, int]:
    """Create the tables, stream every row into them, then index; return the row counts."""
    # one stream per part, so that a change in one part leaves the rows of the others alone
    firm_rng, case_rng, inspection_rng = (random.Random(rng.getrandbits(64)) for _ in range(3))
    firms = enterprises(firm_rng, max(60, cases // 20))
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-65536"):
        db.execute(f"PRAGMA {pragma}")
    for table, columns in TABLES.items():
        db.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
    writer, sink = _Writer(db, batch_size), Sink()
    maker = CaseMaker(case_rng, days, sink, firms)
    for day, count in enumerate(_day_counts(case_rng, days, cases)):
        if count:
            maker.day(day, count)
            writer.sink(sink)
    writer.sink(sink, force=True)
    rows: list[Row] = []
    for row in Inspections(inspection_rng, days, firms).rows(cases // 8):
        rows.append(row)
        writer.write("INFO_INSPECT", rows)
    writer.write("INFO_INSPECT", rows, force=True)
    # secondary indexes after the load: one sort each instead of scattered B-tree inserts
    for table in TABLES:
        db.execute(f"CREATE INDEX IX_{table}_UPDATETIME ON {table} (UPDATETIME)")
    for table in _CHILDREN:
        db.execute(f"CREATE INDEX IX_{table}_PROJID ON {table} (PROJID)")
    db.commit()
    return writer.counts
