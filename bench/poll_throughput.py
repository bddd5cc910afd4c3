"""Benchmark: poll a generated source of 1,000,000 demo cases into an empty SQLite store.

Prints source rows per second and the peak memory of the poller and its reading process.
The poll runs in a child
process so that its peak resident size is not mixed with the generator's.

    python -m bench.poll_throughput [--cases 1000000] [--workdir var/bench]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

from sqlalchemy import text

from watchdog.config import SourceSettings, load_settings


def demo_queries() -> MappingProxyType[str, str]:
    config = Path(__file__).resolve().parent.parent / "config.toml"
    return MappingProxyType(dict(load_settings(config).sources[0].queries))


class ReaderPeaks:
    """The largest peak resident size of the poller's reading processes, sampled from
    /proc while they run. (RUSAGE_CHILDREN will not do: Linux counts a spawned child's
    copy of this process, between fork and exec, as that child's peak.)"""

    def __init__(self) -> None:
        self.largest_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ReaderPeaks:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for child in multiprocessing.active_children():
                try:
                    status = Path(f"/proc/{child.pid}/status").read_text()
                except OSError:
                    continue  # ended meanwhile
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.largest_kib = max(self.largest_kib, int(line.split()[1]))


def poll_once(source_path: Path, store_path: Path, batch_size: int) -> dict[str, float]:
    from watchdog.sources.connect import open_source_engine
    from watchdog.sources.poller import SourcePoller
    from watchdog.store.checkpoint import WalCheckpointer
    from watchdog.store.database import create_store_engine, upgrade_store

    store_path.unlink(missing_ok=True)
    # As the daemon's store: the write-ahead log copied back by a checkpoint thread.
    store = create_store_engine(f"sqlite:///{store_path}", background_checkpoints=True)
    upgrade_store(store)
    checkpointer = WalCheckpointer(store_path).start()
    settings = SourceSettings(
        name="bench",
        url=f"sqlite:///{source_path}",
        timezone=ZoneInfo("Asia/Shanghai"),
        poll_interval=timedelta(seconds=60),
        overlap=timedelta(minutes=5),
        batch_size=batch_size,
        queries=demo_queries(),
        index=0,
    )
    source = open_source_engine(settings)
    with source.connect() as connection:  # what there is to read, outside the timing
        in_source = {
            name: int(connection.execute(text(f"SELECT count(*) FROM ({query}) AS q")).scalar_one())
            for name, query in settings.queries.items()
        }
    readers = ReaderPeaks()
    started = time.perf_counter()
    with readers:
        result = SourcePoller(settings, source, store).poll()
    seconds = time.perf_counter() - started
    checkpointer.stop()
    # Rows read: a read that went on in a reading process read the rows of the
    # updated_at it resumed from twice, so the source's own count is the one divided.
    figures: dict[str, float] = {
        "seconds": seconds,
        "rows": sum(in_source.values()),
        "rows_read": result.rows_read,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "reader_peak_mib": readers.largest_kib / 1024,
    }
    for entity in result.entities:
        figures[f"rows_{entity.entity}"] = in_source[entity.entity]
    figures["quarantined"] = result.rows_quarantined
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("var/bench"))
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    source = args.workdir / f"source-{args.cases}.db"
    store = args.workdir / "store.db"
    if args.child:
        print(json.dumps(poll_once(source, store, args.batch_size)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not source.exists():
        from watchdog.demo import generate_demo_source

        started = time.perf_counter()
        summary = generate_demo_source(source, cases=args.cases)
        print(f"generated {summary} in {time.perf_counter() - started:.1f}s")
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.poll_throughput",
            "--child",
            "--cases",
            str(args.cases),
            "--workdir",
            str(args.workdir),
            "--batch-size",
            str(args.batch_size),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    rows, seconds = figures["rows"], figures["seconds"]
    peak, reader = figures["peak_mib"], figures["reader_peak_mib"]
    print(f"cases in source:      {args.cases:,}")
    for key, value in figures.items():
        if key.startswith("rows_"):
            print(f"  {key[5:]:<18} {int(value):,}")
    print(
        f"source rows polled:   {int(rows):,} ({int(figures['quarantined'])} quarantined; "
        f"{int(figures['rows_read'] - rows)} read twice)"
    )
    print(f"poll time:            {seconds:.1f} s")
    print(f"throughput:           {rows / seconds:,.0f} rows/s")
    print(
        f"peak memory:          {peak + reader:,.0f} MiB at most "
        f"(poller {peak:,.0f} + reading process {reader:,.0f})"
    )
    print(f"store size:           {store.stat().st_size / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
