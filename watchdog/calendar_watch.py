"""Which working-day calendar judged a source last, and noticing when it changes.

Deadlines rest on the calendar. When an operator adds a newly published year to the
override file, deadlines counted Monday–Friday there (provisional) must be counted again,
although no case changed, so no incremental pass would look at them. Hence:

1. the calendar in use has a fingerprint: the official data's version and coverage and
   the override days as loaded (so a comment edited in the file changes nothing);
2. the daemon reads the override file again at each cycle, and loads it when its bytes
   changed (a broken file is reported once and the calendar in use stays);
3. each recording pass stores the fingerprint it used in `source_state.calendar`; a
   pass whose calendar differs from the stored one is full. This covers a change while
   running and a restart with a new file alike, and several daemons sharing a store.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import chinese_calendar
from sqlalchemy import Engine, select, update

from watchdog.calendar import CalendarError, CalendarOverrides, WorkCalendar, load_overrides
from watchdog.store import schema

log = logging.getLogger(__name__)


def calendar_fingerprint(calendar: WorkCalendar, overrides: CalendarOverrides | None) -> str:
    """A digest of everything the calendar's days come from."""
    parts = [f"chinese_calendar {chinese_calendar.__version__}", f"to {calendar.coverage_end}"]
    if overrides is not None:
        parts.append("holidays " + " ".join(sorted(map(str, overrides.holidays))))
        parts.append("makeup " + " ".join(sorted(map(str, overrides.makeup_workdays))))
        parts.append("years " + " ".join(map(str, sorted(overrides.years))))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class CalendarFile:
    """The calendar built from the optional override file, reloaded when the file changes.

    Raises CalendarError at construction (start: a broken file is a configuration error);
    later reloads log it and keep the calendar in use.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._content = self._read()
        overrides = load_overrides(path) if path is not None else None
        self.calendar = WorkCalendar(overrides)
        self.fingerprint = calendar_fingerprint(self.calendar, overrides)

    def _read(self) -> bytes | None:
        if self.path is None:
            return None
        try:
            return self.path.read_bytes()
        except OSError:
            return None  # load_overrides says what is wrong, naming the file

    def reload_if_changed(self) -> bool:
        """Load the file again if its bytes changed; True if the calendar changed."""
        if self.path is None:
            return False
        with self._lock:
            content = self._read()
            if content == self._content:
                return False
            self._content = content  # a broken file is reported once, not every cycle
            try:
                overrides = load_overrides(self.path)
            except CalendarError as exc:
                log.error(
                    "calendar override file not reloaded, the calendar in use stays: %s",
                    "; ".join(exc.problems),
                )
                return False
            calendar = WorkCalendar(overrides)
            fingerprint = calendar_fingerprint(calendar, overrides)
            if fingerprint == self.fingerprint:
                return False
            self.calendar, self.fingerprint = calendar, fingerprint
        log.warning(
            "calendar overrides reloaded from %s: covered through %s; every source's next "
            "pass evaluates every case",
            self.path,
            calendar.coverage_end,
        )
        return True


def stored_fingerprint(store: Engine, source: str) -> str | None:
    """The calendar fingerprint of the source's last recording pass (None: unknown)."""
    state = schema.source_state
    with store.connect() as connection:
        value = connection.scalar(select(state.c.calendar).where(state.c.source == source))
    return None if value is None else str(value)


def record_fingerprint(store: Engine, source: str, fingerprint: str) -> None:
    """Store the calendar a completed recording pass used (after it is marked evaluated:
    a crash in between only makes the next pass full once more)."""
    state = schema.source_state
    with store.begin() as connection:
        connection.execute(
            update(state).where(state.c.source == source).values(calendar=fingerprint)
        )
