"""The watchdog command runs with the collector thresholds of `watchdog.gc_policy`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from watchdog.gc_policy import YOUNG_THRESHOLD

RULES = Path(__file__).resolve().parent.parent / "rules"


def test_the_command_runs_with_fewer_collections() -> None:
    # A fresh interpreter, so the outcome does not depend on this test process.
    probe = (
        "import gc, sys\n"
        "from watchdog.cli import main\n"
        "print(gc.get_threshold()[0])\n"
        f"status = main(['rules', 'check', {str(RULES)!r}])\n"
        "print(status, gc.get_threshold()[0], gc.get_freeze_count() > 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    lines = run.stdout.strip().splitlines()
    assert lines[0] == "700"  # CPython's default, before the command
    status, threshold, frozen = lines[-1].split()
    assert status == "0"
    assert int(threshold) == YOUNG_THRESHOLD
    assert frozen == "True"
