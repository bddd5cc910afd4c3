"""The committed Grafana dashboards are what the generator writes, with fixed uids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watchdog.dashboards.__main__ import main
from watchdog.dashboards.build import DASHBOARDS, DEPARTMENT_UID, HEALTH_UID, WALL_UID, render

FOLDER = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_the_committed_json_equals_the_generator_output(name: str) -> None:
    committed = (FOLDER / f"{name}.json").read_text(encoding="utf-8")
    assert committed == render(name), (
        f"grafana/dashboards/{name}.json is stale: run `python -m watchdog.dashboards`"
    )


def test_the_generator_writes_every_dashboard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.json" for n in DASHBOARDS)
    assert capsys.readouterr().out.count("wrote ") == len(DASHBOARDS)


def test_uids_are_fixed_and_titles_are_chinese() -> None:
    uids = {name: json.loads(render(name))["uid"] for name in DASHBOARDS}
    assert uids == {"wall": WALL_UID, "department": DEPARTMENT_UID, "health": HEALTH_UID}
    for name in DASHBOARDS:
        model = json.loads(render(name))
        for title in [model["title"], *(p["title"] for p in model["panels"])]:
            assert any("\u4e00" <= ch <= "\u9fff" for ch in title), (name, title)


def test_the_department_drill_down_is_chosen_by_name_and_legends_show_names() -> None:
    model = json.loads(render("department"))
    (variable,) = model["templating"]["list"]
    assert variable["name"] == "dept_name"
    assert "label_values(watchdog_open_cases, dept_name)" in json.dumps(variable)
    wall = json.loads(render("wall"))
    legends = [t.get("legendFormat") for p in wall["panels"] for t in p.get("targets", [])]
    assert "{{dept_name}}" in legends and "{{dept}}" not in legends
