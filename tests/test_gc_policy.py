"""A pass over every case runs with fewer collections; the daemon's cycles do not."""

from __future__ import annotations

import gc
import threading

from watchdog.gc_policy import YOUNG_THRESHOLD, fewer_collections


def test_the_thresholds_hold_for_the_block_and_are_restored_after() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_threshold() == before


def test_overlapping_passes_restore_the_thresholds_when_the_last_one_ends() -> None:
    before = gc.get_threshold()
    first_in = threading.Event()
    second_done = threading.Event()
    seen: list[int] = []

    def second() -> None:
        first_in.wait()
        with fewer_collections():
            seen.append(gc.get_threshold()[0])
        second_done.set()

    worker = threading.Thread(target=second)
    worker.start()
    with fewer_collections():
        first_in.set()
        second_done.wait()
        # The second pass ended first: the first one still runs with the thresholds.
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    worker.join()
    assert seen == [YOUNG_THRESHOLD]
    assert gc.get_threshold() == before
