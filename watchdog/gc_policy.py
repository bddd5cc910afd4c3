"""How often the garbage collector runs while the watchdog evaluates every case.

A full evaluation creates tens of millions of short-lived containers (rows, step
records, evidence dicts) in chunks of a few thousand cases. With CPython's default
thresholds (700, 10, 10) a chunk's data lives long enough to reach the oldest
generation, and each full collection rescans every object alive: at 1,000,000 cases
135 full collections took 48 s of a 185 s evaluation (`bench/evaluation.py`). Nearly
all of these objects are freed by reference counting; the collector only has to find
cycles, which are rare here, so during such a pass it can run far less often.

Only then: in the daemon's ordinary cycles the same thresholds let cyclic garbage (of
the database drivers, of exceptions) pile up between collections, and the soak test saw
the resident memory climb 40 MB/min for it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Young collections after 50,000 net new containers instead of 700: at 1M cases the
# evaluation then ran 15 young collections and no full one (0.9 s instead of 48 s).
YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
# Full collections stay possible (every 200 young ones, and only when the oldest
# generation grew by a quarter).
OLD_THRESHOLD = 10


class _Policy:
    """The thresholds are the process's: passes that overlap (two sources evaluated
    in full at once) share one setting, and the last to finish restores the old one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.saved: tuple[int, int, int] = gc.get_threshold()

    def enter(self) -> None:
        with self.lock:
            if self.holders == 0:
                self.saved = gc.get_threshold()
                gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
            self.holders += 1

    def leave(self) -> None:
        with self.lock:
            self.holders -= 1
            if self.holders == 0:
                gc.set_threshold(*self.saved)


_POLICY = _Policy()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The thresholds above for the block (a pass over every case of a source)."""
    _POLICY.enter()
    try:
        yield
    finally:
        _POLICY.leave()
