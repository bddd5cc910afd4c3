"""A half-minute soak of a real daemon on PostgreSQL with a writer changing its source:
no growth of file descriptors or store connections, memory slope bounded.

Half a minute at one cycle a second is ~25 cycles and ~500 source changes: enough for a
descriptor or connection leaked per cycle (or per poll, delivery run or snapshot) to
show as growth, within the suite's time. `python -m bench.soak --minutes 10` runs the same
for longer and prints the figures (docs/scaling.md has the last ones).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import report, run_soak, verdict

# Daemons killed, outages, timing: run alone (`make pytest` runs the serial ones last).
pytestmark = pytest.mark.serial


@pytest.mark.slow  # about 40 s; still run by the default `pytest` command
@pytest.mark.parametrize("backend", ["postgresql"])
def test_half_a_minute_of_cycles_on_a_changing_source_leaks_no_descriptors_or_connections(
    store_url: str, tmp_path: Path
) -> None:
    result = run_soak(0.5, tmp_path, store_url=store_url, cases=1000, sample_every=1.0)
    print(report(result))
    assert result.changes > 250  # the writer kept changing the source
    assert len(result.cycles) >= 10  # and the daemon kept cycling on it
    assert len(result.samples) >= 20
    assert all(sample.connections >= 2 for sample in result.samples)  # the counting works
    # Descriptors and connections must not grow at all; memory after warm-up at most
    # 10 MB a minute: the working set grows with the store's history (each flip is a
    # revision that keeps a violation open, contested), a leak of one cycle's rows is more.
    assert verdict(result, memory_limit=10.0) == [], report(result)
    assert "watchdog stopped" in result.log
