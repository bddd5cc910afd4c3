"""The Prometheus side: config and alert rules checked by promtool, and every dashboard
panel's query run against a real Prometheus scraping a real daemon on demo data.

Prometheus comes from the Debian package `prometheus` (installed by `make test`); without
it these tests skip, except when CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from watchdog.dashboards.build import DASHBOARDS

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "prometheus"
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
MAX_SERIES = 2000


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: install the Debian package prometheus (make prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: Prometheus tests must run)")
        pytest.skip(message)
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_example_scrape_config_is_valid() -> None:
    result = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_the_alert_rules_fire_and_stay_quiet_as_their_unit_tests_say() -> None:
    result = promtool("test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def wait_for(what: str, check: Any, seconds: float, log: Any = None) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}" + (f"\n{log()}" if log else ""))
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def demo_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`watchdog run` on a small generated demo county; yields its metrics port."""
    folder = tmp_path_factory.mktemp("demo")
    for name in ("config.toml", "calendar.toml"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "rules", folder / "rules")
    built = subprocess.run(
        [sys.executable, "-m", "watchdog", "demo", "--once", "--cases", "3000"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    port = free_port()
    with (folder / "config.toml").open("a", encoding="utf-8") as config:
        config.write(f'\n[metrics]\naddress = "127.0.0.1"\nport = {port}\n')
    log = folder / "daemon.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run"],
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        # The store figures exist once the first cycle has refreshed the snapshot.
        wait_for(
            "the daemon's first snapshot",
            lambda: "watchdog_open_cases{" in http_get(f"http://127.0.0.1:{port}/metrics"),
            60,
            lambda: log.read_text(encoding="utf-8"),
        )
        yield port, log
    finally:
        stop(process)


@pytest.fixture(scope="module")
def prometheus(
    demo_daemon: tuple[int, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus scraping the daemon every second; yields its base URL."""
    binary = tool("prometheus")
    daemon_port, _ = demo_daemon
    folder = tmp_path_factory.mktemp("prometheus")
    (folder / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: watchdog\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{daemon_port}']\n",
        encoding="utf-8",
    )
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def scrapes() -> bool:
            result = query(url, 'count_over_time(up{job="watchdog"}[5m])')
            return bool(result) and float(result[0]["value"][1]) >= 2

        wait_for("two scrapes", scrapes, 30, lambda: log.read_text(encoding="utf-8"))
        yield url
    finally:
        stop(process)


def query(base: str, expr: str) -> list[dict[str, Any]]:
    text = http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer = json.loads(text)
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def substitutions(base: str, model: dict[str, Any]) -> dict[str, str]:
    """A real value for each template variable: the department with the most open cases."""
    values: dict[str, str] = {}
    for variable in model.get("templating", {}).get("list", []):
        assert variable["name"] == "dept_name", variable["name"]
        (top,) = query(base, "topk(1, watchdog_open_cases)")
        values[variable["name"]] = top["metric"]["dept_name"]
    return values


def test_every_panel_query_of_every_dashboard_returns_series(prometheus: str) -> None:
    failures: list[str] = []
    checked = 0
    for name in DASHBOARDS:
        model = json.loads((DASHBOARD_DIR / f"{name}.json").read_text(encoding="utf-8"))
        values = substitutions(prometheus, model)
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in values.items():
                    expr = expr.replace("${" + variable + "}", value).replace("$" + variable, value)
                assert "$" not in expr, f"{model['title']} / {panel['title']}: {expr}"
                checked += 1
                if not query(prometheus, expr):
                    failures.append(f"{model['title']} / {panel['title']}: no series for {expr}")
    assert not failures, "\n".join(failures)
    assert checked >= 30


def test_the_demo_endpoint_stays_under_2000_series(
    demo_daemon: tuple[int, Path], prometheus: str
) -> None:
    port, _ = demo_daemon
    started = time.monotonic()
    text = http_get(f"http://127.0.0.1:{port}/metrics")
    seconds = time.monotonic() - started
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    (scraped,) = query(prometheus, 'scrape_samples_scraped{job="watchdog"}')
    (duration,) = query(prometheus, 'scrape_duration_seconds{job="watchdog"}')
    print(
        f"\n/metrics on the demo: {len(series)} series, fetched in {seconds * 1000:.1f} ms; "
        f"Prometheus scraped {scraped['value'][1]} samples in "
        f"{float(duration['value'][1]) * 1000:.1f} ms"
    )
    assert len(series) < MAX_SERIES
    assert int(scraped["value"][1]) == len(series)


def test_healthz_of_the_running_daemon_is_ok(demo_daemon: tuple[int, Path]) -> None:
    port, log = demo_daemon
    assert http_get(f"http://127.0.0.1:{port}/healthz") == "ok\n", log.read_text(encoding="utf-8")
