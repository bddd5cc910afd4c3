"""Regenerate grafana/dashboards/*.json: `python grafana/generate.py` (the code lives in
watchdog/dashboards/build.py so tests and mypy see it)."""

import sys

from watchdog.dashboards.__main__ import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
