"""How often the garbage collector runs in a watchdog process.

A full evaluation creates tens of millions of short-lived containers (rows, step
records, evidence dicts) in chunks of a few thousand cases. With CPython's default
thresholds (700, 10, 10) a chunk's data lives long enough to reach the oldest
generation, and each full collection rescans every object alive: at 1,000,000 cases
135 full collections took 48 s of a 185 s evaluation (`bench/evaluation.py`). Nearly
all of these objects are freed by reference counting; the collector only has to find
cycles, which are rare here, so it can run far less often.
"""

from __future__ import annotations

import gc

# Young collections after 50,000 net new containers instead of 700: at 1M cases the
# evaluation then ran 15 young collections and no full one (0.9 s instead of 48 s).
YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
# Full collections stay possible (every 200 young ones, and only when the oldest
# generation grew by a quarter), so cyclic garbage in a long-running daemon is freed.
OLD_THRESHOLD = 10


def tune_garbage_collector() -> None:
    """Set the thresholds above, once per process; what exists then (modules, settings)
    is frozen, since it lives as long as the process and need never be scanned again."""
    if gc.get_threshold()[0] == YOUNG_THRESHOLD:
        return  # a process calling `main` repeatedly (the tests) freezes only once
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
