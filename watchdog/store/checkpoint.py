"""Copying a SQLite store's write-ahead log back into the database file, beside the
writers rather than inside their commits.

By default SQLite checkpoints inside the commit that takes the log past 1,000 pages
(4 MB): that commit copies the pages back and waits for two fsyncs. A cycle's poll of
2,000 changed rows crosses the mark nearly every time, so one of its commits paid for
the copy: 0.6-0.7 s of a 0.9-1.1 s poll on a cold page cache at a million cases
(0.29-0.38 s without it), and seconds when the disk was slow. The watchdog's own
store engine turns automatic checkpoints off (`wal_autocheckpoint=0`, see
`store.database`) and this thread checkpoints instead, every few seconds, in PASSIVE
mode: it never waits for or blocks a writer or a reader, and copies what no open read
still needs. Commits stay as durable as before (synchronous=NORMAL: the log is synced
at each checkpoint); the last connection to close checkpoints what is left, as SQLite
always does.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# Often enough that the log stays small (a full evaluation writes ~100 MB a minute),
# rarely enough to cost nothing when there is nothing to copy.
CHECK_SECONDS = 2.0


class WalCheckpointer:
    """A daemon thread that checkpoints one SQLite database file (PASSIVE) every
    `interval` seconds, until stopped. Failures are logged and retried next time."""

    def __init__(self, database: Path, interval: float = CHECK_SECONDS) -> None:
        self.database = database
        self.interval = interval
        self.checkpoints = 0  # completed checkpoint calls, for tests and the curious
        # (busy, frames in the log, frames copied back) of the last one: SQLite's answer
        self.last: tuple[int, int, int] | None = None
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(
            target=self._run, name=f"wal-checkpoint {database.name}", daemon=True
        )

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread (after one last checkpoint)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                stopping = self._stop.wait(self.interval)
                if connection is None:
                    connection = self._connect()
                if connection is not None:
                    self._checkpoint(connection)
                if stopping:
                    return
        finally:
            if connection is not None:
                connection.close()

    def _connect(self) -> sqlite3.Connection | None:
        try:
            # Short busy timeout: a checkpoint that must wait is simply tried next time.
            return sqlite3.connect(self.database, timeout=0.1)  # made and used in the thread
        except sqlite3.Error as exc:
            self._report(exc)
            return None

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            self._report(exc)
            return
        self.last = (int(row[0]), int(row[1]), int(row[2]))
        self.checkpoints += 1
        if self._failing:
            log.info("store %s: write-ahead log checkpoints work again", self.database)
            self._failing = False

    def _report(self, exc: sqlite3.Error) -> None:
        # Once per spell of failures: a store that stays locked must not flood the log.
        if not self._failing:
            log.warning(
                "store %s: cannot checkpoint the write-ahead log (%s); retrying every %g s",
                self.database,
                exc,
                self.interval,
            )
            self._failing = True
