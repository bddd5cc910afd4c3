"""Who does what when several daemons share a store.

On PostgreSQL each unit of work — polling one source, delivering the outbox — has a
leader: the daemon holding a session advisory lock (`pg_try_advisory_lock`) on a key
derived from the store (database and schema) and the unit's name. The locks live on one
dedicated connection, so they last exactly as long as the daemon's session: a killed
daemon's connection closes, PostgreSQL ends its session and frees its locks, and a
follower takes them at its next try (each scheduled run tries once, so within one poll
interval). A broken lock connection is lost leadership of everything; the next try
connects again.

SQLite takes one daemon per store: an OS file lock (`flock` on `<store>.lock`, freed by
the OS when the process dies) makes a second daemon refuse to start, naming the store
and the pid that holds it.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from watchdog.errors import first_line

log = logging.getLogger(__name__)

DELIVERY = "delivery"
T = TypeVar("T")


def source_unit(name: str) -> str:
    """The leadership name of polling one source."""
    return f"source:{name}"


class StoreInUseError(Exception):
    """Another process holds the single-daemon lock of a SQLite store."""


class Leadership(Protocol):
    """Decides whether this daemon may do one unit of work now.

    `holds(name)` is asked before each run of the unit: True means this daemon leads it
    (it keeps leading until it stops or its leadership is lost); it never raises.
    """

    def holds(self, name: str) -> bool: ...

    def close(self) -> None: ...


def advisory_key(store_identity: str, name: str) -> int:
    """A stable signed 64-bit key (PostgreSQL's bigint) for one unit of one store."""
    digest = hashlib.sha256(f"watchdog\0{store_identity}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLeadership:
    """Leadership by PostgreSQL session advisory locks on a dedicated connection."""

    def __init__(self, store: Engine) -> None:
        # Its own engine: the lock session must not go back to a pool, be recycled by a
        # pre-ping, or be shared with the work it guards.
        self._engine = create_engine(
            store.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "application_name": f"watchdog leadership pid {os.getpid()}",
                "connect_timeout": 5,
                # A lock connection cut off without a reset (a dead network) is found
                # out by keepalives instead of hanging the next check.
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
        )
        self._where = store.url.render_as_string(hide_password=True)
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._identity = ""
        self._held: set[str] = set()
        self._unreachable = False
        self.backend_pid: int | None = None  # the lock session's server process

    def holds(self, name: str) -> bool:
        with self._lock:
            try:
                connection = self._connect()
                if name in self._held:
                    connection.execute(text("SELECT 1"))  # the session, and so the lock, lives
                    return True
                key = advisory_key(self._identity, name)
                taken = bool(
                    connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
                )
            except Exception as exc:  # the lock session is gone: so is every lock it held
                self._lose_all(first_line(exc))
                return False
            if taken:
                self._held.add(name)
                log.info(
                    'leadership of "%s" gained (advisory lock %d on %s)', name, key, self._where
                )
            return taken

    def held(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._held)

    def close(self) -> None:
        """Give up every leadership (closing the session frees its locks)."""
        with self._lock:
            if self._connection is not None:
                for name in sorted(self._held):
                    log.info('leadership of "%s" released', name)
                self._held.clear()
                try:
                    self._connection.close()
                except Exception:  # the session ends with the socket either way
                    log.debug("closing the lock connection failed", exc_info=True)
                self._connection = None
        self._engine.dispose()

    def _connect(self) -> Connection:
        if self._connection is not None:
            return self._connection
        try:
            connection = self._engine.connect()
            row = connection.execute(
                text("SELECT current_database(), current_schema(), pg_backend_pid()")
            ).one()
        except Exception as exc:
            if not self._unreachable:
                log.warning(
                    "leadership: cannot open the lock connection to %s: %s",
                    self._where,
                    first_line(exc),
                )
                self._unreachable = True
            raise
        if self._unreachable:
            log.info("leadership: lock connection to %s open again", self._where)
            self._unreachable = False
        # Keys are per store: two stores in two schemas of one database do not collide.
        self._identity = f"{row[0]}.{row[1]}"
        self._connection = connection
        self.backend_pid = int(row[2])
        return connection

    def _lose_all(self, reason: str) -> None:
        for name in sorted(self._held):
            log.warning('leadership of "%s" lost: lock connection failed: %s', name, reason)
        self._held.clear()
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except Exception:
                log.debug("discarding the lock connection failed", exc_info=True)
            self._connection = None
            self.backend_pid = None


class SoleLeadership:
    """A store only one daemon may use (SQLite): that daemon leads everything."""

    def __init__(self, lock: StoreLock | None) -> None:
        self.lock = lock

    def holds(self, name: str) -> bool:
        return True

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()


class StoreLock:
    """The OS file lock that makes a SQLite store single-daemon."""

    _held: ClassVar[dict[Path, StoreLock]] = {}  # one per store and process (flock: per open file)
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle
        self._users = 1

    @classmethod
    def acquire(cls, store_file: Path) -> StoreLock:
        """Lock `<store>.lock`, or raise StoreInUseError naming the holder's pid."""
        path = store_file.resolve().with_name(store_file.name + ".lock")
        with cls._registry_lock:
            mine = cls._held.get(path)
            if mine is not None:
                mine._users += 1
                return mine
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a+", encoding="utf-8")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise StoreInUseError(
                    f"store {store_file} is in use by another watchdog (pid {holder}, lock "
                    f"file {path}); a SQLite store takes one daemon at a time — stop that "
                    "one, or use a PostgreSQL store to run several"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            lock = cls._held[path] = cls(path, handle)
            return lock

    def release(self) -> None:
        with self._registry_lock:
            self._users -= 1
            if self._users > 0:
                return
            del self._held[self.path]
            # The file stays: removing it would let a third process lock a new inode
            # while a second still waits on the old one.
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()


def lock_sqlite_store(store: Engine) -> StoreLock | None:
    """The single-daemon lock of a SQLite store file; None for other stores."""
    url = store.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return StoreLock.acquire(Path(url.database))


def leadership_for(store: Engine) -> Leadership:
    """Advisory-lock leadership on PostgreSQL; the single-daemon lock on SQLite."""
    if store.url.get_backend_name() == "postgresql":
        return AdvisoryLeadership(store)
    return SoleLeadership(lock_sqlite_store(store))


def led_by(leadership: Leadership, name: str, job: Callable[..., T]) -> Callable[..., T | None]:
    """`job` wrapped to run only while this daemon leads `name` (a scheduler job)."""

    @functools.wraps(job)
    def run(*args: Any, **kwargs: Any) -> T | None:
        if not leadership.holds(name):
            return None
        return job(*args, **kwargs)

    return run
