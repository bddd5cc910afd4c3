"""Write the dashboards: `python -m watchdog.dashboards [folder]` (default grafana/dashboards).

Run it after changing `watchdog.dashboards.build` and commit the JSON; a test fails while
the committed files differ from what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from watchdog.dashboards.build import DASHBOARDS, render

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DEFAULT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARDS:
        path = folder / f"{name}.json"
        path.write_text(render(name), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
