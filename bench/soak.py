"""Soak: a real daemon cycling for minutes on a source a writer keeps changing.

The daemon polls every second (sixty times its usual pace, so ten minutes here are
about ten hours of cycles) while a writer changes cases continuously; notices are on
and delivered into a file outbox. Every few seconds the resident memory and open file
descriptors of the daemon (/proc/<pid>), its store connections (PostgreSQL:
pg_stat_activity by application name; SQLite: descriptors open on the store file) and
the cycle times from its log are sampled. Prints each series' least-squares slope (per
minute, after a warm-up), cycle time p50/p95 at the start and the end, and a verdict.

    python -m bench.soak [--minutes 10] [--store-url postgresql+psycopg://...] [--cases 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from watchdog.store.database import create_store_engine, upgrade_store

RULES = Path(__file__).resolve().parent.parent / "rules"
SHANGHAI = ZoneInfo("Asia/Shanghai")
APPLICATION = "watchdog-soak"
CASES = """SELECT id AS case_id, NULL AS matter_code, NULL AS matter_name, dept AS dept_code,
NULL AS dept_name, NULL AS applicant_id, NULL AS applied_at, accepted AS accepted_at,
lim AS promised_limit, NULL AS statutory_limit, 'W' AS limit_unit, NULL AS completed_at,
NULL AS result, changed AS updated_at FROM cases"""
CYCLE_LINE = re.compile(r'^(\S+ \S+) INFO watchdog\.daemon: source "soak": read .* in ([0-9.]+)s$')


@dataclass
class Sample:
    seconds: float  # since the daemon started
    rss_mb: float
    fds: int
    connections: int


@dataclass
class SoakResult:
    minutes: float
    samples: list[Sample] = field(default_factory=list)
    cycles: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    changes: int = 0
    log: str = ""

    def after_warmup(self) -> list[Sample]:
        """Samples after the first fifth of the run (imports, caches, pools filling)."""
        cut = self.samples[-1].seconds * 0.2 if self.samples else 0.0
        return [s for s in self.samples if s.seconds >= cut]

    def slope(self, name: str) -> float:
        """Least-squares slope of one sampled series after warm-up, per minute."""
        samples = self.after_warmup()
        return per_minute([s.seconds for s in samples], [float(getattr(s, name)) for s in samples])

    def cycle_slope(self) -> float:
        cut = self.cycles[-1][0] * 0.2 if self.cycles else 0.0
        kept = [(at, seconds) for at, seconds in self.cycles if at >= cut]
        return per_minute([at for at, _ in kept], [seconds * 1000 for _, seconds in kept])

    def cycle_percentiles(self, part: str) -> tuple[float, float]:
        """p50 and p95 cycle time in ms over the first or last fifth of the cycles."""
        n = max(1, len(self.cycles) // 5)
        chosen = self.cycles[:n] if part == "start" else self.cycles[-n:]
        times = sorted(seconds * 1000 for _, seconds in chosen)
        if not times:
            return (0.0, 0.0)
        return (statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))])


def per_minute(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread * 60


def local_now() -> str:
    return datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def make_source(path: Path, cases: int) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE cases "
            "(id TEXT PRIMARY KEY, dept TEXT, accepted TEXT, lim INTEGER, changed TEXT)"
        )
        connection.executemany(
            "INSERT INTO cases VALUES (?, 'SCJGJ', '2026-03-02 10:00:00', ?, ?)",
            [(f"C{n:06d}", 5 if n % 2 else 400, local_now()) for n in range(cases)],
        )


def write_continuously(path: Path, cases: int, per_second: int, stop: threading.Event) -> int:
    """Flip the limits of random cases, `per_second` a second, until stopped."""
    chance = random.Random(7)
    changes = 0
    with sqlite3.connect(path, timeout=30) as connection:
        while not stop.wait(1.0 / max(1, per_second)):
            connection.execute(
                "UPDATE cases SET lim = CASE lim WHEN 5 THEN 400 ELSE 5 END, changed = ? "
                "WHERE id = ?",
                (local_now(), f"C{chance.randrange(cases):06d}"),
            )
            connection.commit()
            changes += 1
    return changes


def write_config(folder: Path, store_url: str, sqlite_cache_mib: int | None = None) -> Path:
    config = folder / "config.toml"
    cache = "" if sqlite_cache_mib is None else f"sqlite_cache_mib = {sqlite_cache_mib}\n"
    config.write_text(
        f'[store]\nurl = "{store_url}"\n{cache}\n[rules]\ndir = "{RULES}"\n\n'
        "[metrics]\nenabled = false\n\n"
        '[mail]\nsender = "file"\noutbox = "outbox"\ninterval = "1s"\n\n'
        '[notices]\nenabled = true\nsupervision_office = ["office@example.gov.cn"]\n\n'
        '[[sources]]\nname = "soak"\nurl = "sqlite:///source.db"\npoll_interval = "1s"\n'
        f'overlap = "1m"\n[sources.queries]\ncases = """{CASES}"""\n',
        encoding="utf-8",
    )
    return config


def with_application_name(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.update_query_dict({"application_name": APPLICATION}).render_as_string(
        hide_password=False
    )


class Sampler:
    """Reads the daemon's memory, descriptors and store connections from outside."""

    def __init__(self, pid: int, store_url: str, store_file: Path | None) -> None:
        self.pid = pid
        self.store_file = store_file
        self.engine = (
            create_engine(make_url(store_url).difference_update_query(["application_name"]))
            if store_file is None
            else None
        )

    def sample(self, seconds: float) -> Sample:
        rss_kb = 0
        proc = Path(f"/proc/{self.pid}")
        for line in (proc / "status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
        fds = [entry.name for entry in (proc / "fd").iterdir()]
        return Sample(seconds, rss_kb / 1024, len(fds), self.connections(fds))

    def connections(self, fds: list[str]) -> int:
        if self.engine is not None:
            with self.engine.connect() as connection:
                count = connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name IN (:app, :leadership)"
                    ),
                    {"app": APPLICATION, "leadership": f"watchdog leadership pid {self.pid}"},
                )
            return int(count or 0)
        assert self.store_file is not None
        target = str(self.store_file.resolve())
        opened = 0
        for fd in fds:
            try:
                opened += str(Path(f"/proc/{self.pid}/fd/{fd}").readlink()) == target
            except OSError:  # closed between the listing and the look
                continue
        return opened

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def parse_cycles(log: str, started: datetime) -> list[tuple[float, float]]:
    cycles = []
    for line in log.splitlines():
        match = CYCLE_LINE.match(line)
        if match:
            at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
            cycles.append(((at - started).total_seconds(), float(match[2])))
    return cycles


def run_soak(
    minutes: float,
    folder: Path,
    *,
    store_url: str | None = None,
    cases: int = 2000,
    changes_per_second: int = 20,
    sample_every: float = 5.0,
    sqlite_cache_mib: int | None = None,
) -> SoakResult:
    """Soak a real daemon for `minutes` in `folder`; the figures."""
    folder.mkdir(parents=True, exist_ok=True)
    make_source(folder / "source.db", cases)
    url = store_url or f"sqlite:///{folder / 'store.db'}"
    store = create_store_engine(url)
    upgrade_store(store)
    store.dispose()
    config = write_config(folder, with_application_name(url), sqlite_cache_mib)
    log_path = folder / "daemon.log"
    started = datetime.now()
    with log_path.open("w", encoding="utf-8") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run", "--config", str(config)],
            cwd=folder,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    stop = threading.Event()
    result = SoakResult(minutes)
    counted: list[int] = []
    writer = threading.Thread(
        target=lambda: counted.append(
            write_continuously(folder / "source.db", cases, changes_per_second, stop)
        ),
        daemon=True,
    )
    store_file = None if store_url else folder / "store.db"
    sampler = Sampler(daemon.pid, url, store_file)
    try:
        while "watchdog started" not in log_path.read_text(encoding="utf-8"):
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited:\n{log_path.read_text(encoding='utf-8')}")
            time.sleep(0.1)
        writer.start()
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < minutes * 60:
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon died:\n{log_path.read_text(encoding='utf-8')}")
            result.samples.append(sampler.sample(elapsed))
            time.sleep(min(sample_every, max(0.0, minutes * 60 - elapsed)))
    finally:
        stop.set()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        sampler.close()
        if writer.is_alive():
            writer.join(10)
    result.changes = counted[0] if counted else 0
    result.log = log_path.read_text(encoding="utf-8")
    result.cycles = parse_cycles(result.log, started)
    return result


def verdict(result: SoakResult, memory_limit: float = 2.0) -> list[str]:
    """What is wrong with a soak; empty when it is flat. Descriptors and connections must
    not grow at all over the run (less than one over its length after warm-up); memory
    may grow less than `memory_limit` MB a minute (allocator noise, caches filling)."""
    problems = []
    kept = result.after_warmup()
    if not kept:
        return ["no samples"]
    span = (kept[-1].seconds - kept[0].seconds) / 60
    for name, what in (("fds", "file descriptors"), ("connections", "store connections")):
        growth = result.slope(name) * span
        later = max(getattr(s, name) for s in kept[len(kept) // 2 :])
        earlier = max(getattr(s, name) for s in kept[: max(1, len(kept) // 2)])
        if growth >= 1 and later > earlier:
            problems.append(f"{what} grow: {growth:+.1f} over {span:.1f} min ({earlier}→{later})")
    if result.slope("rss_mb") > memory_limit:
        problems.append(f"memory grows {result.slope('rss_mb'):+.2f} MB/min (limit {memory_limit})")
    return problems


def report(result: SoakResult) -> str:
    first, last = result.samples[0], result.samples[-1]
    start, end = result.cycle_percentiles("start"), result.cycle_percentiles("end")
    lines = [
        f"soak: {result.minutes:g} min, {len(result.cycles)} cycles, {result.changes} source "
        f"changes, {len(result.samples)} samples",
        f"  memory (RSS)     {first.rss_mb:7.1f} → {last.rss_mb:7.1f} MB   slope "
        f"{result.slope('rss_mb'):+.3f} MB/min",
        f"  file descriptors {first.fds:7d} → {last.fds:7d}      slope "
        f"{result.slope('fds'):+.3f} /min",
        f"  store connections{first.connections:7d} → {last.connections:7d}      slope "
        f"{result.slope('connections'):+.3f} /min",
        f"  cycle time       p50/p95 {start[0]:.0f}/{start[1]:.0f} ms at the start, "
        f"{end[0]:.0f}/{end[1]:.0f} ms at the end; slope {result.cycle_slope():+.2f} ms/min",
    ]
    problems = verdict(result)
    lines.append("verdict: " + ("flat (PASS)" if not problems else "; ".join(problems)))
    return "\n".join(lines)


def write_series(result: SoakResult, path: Path) -> None:
    """Samples as CSV (seconds, rss_mb, fds, connections), for a plot or a closer look."""
    lines = ["seconds,rss_mb,fds,connections"]
    lines += [f"{s.seconds:.1f},{s.rss_mb:.2f},{s.fds},{s.connections}" for s in result.samples]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--store-url", help="an empty PostgreSQL store (default: a SQLite file in --workdir)"
    )
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--changes-per-second", type=int, default=20)
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, help="default: a new temporary folder")
    parser.add_argument(
        "--series", type=Path, help="also write every sample as CSV to this file (to plot)"
    )
    parser.add_argument(
        "--sqlite-cache-mib",
        type=int,
        help="the store's page cache per connection (default 128): SQLite's cache fills as "
        "the store grows, which a short soak cannot tell from a leak; a small one can",
    )
    args = parser.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="watchdog-soak-"))
    result = run_soak(
        args.minutes,
        folder,
        store_url=args.store_url,
        cases=args.cases,
        changes_per_second=args.changes_per_second,
        sample_every=args.sample_every,
        sqlite_cache_mib=args.sqlite_cache_mib,
    )
    print(report(result))
    print(f"(daemon log: {folder / 'daemon.log'})")
    if args.series:
        write_series(result, args.series)
    sys.exit(1 if verdict(result) else 0)


if __name__ == "__main__":
    main()
