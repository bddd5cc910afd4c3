"""The console in a real browser: Debian's chromium, driven by Playwright, against the
real web server (uvicorn on a free port) over a small demo county's recorded history.

An auditor logs in, filters by a department, opens a violation and finds its evidence
and timeline, follows a notice from the timeline, and opens the department summary. A
screenshot of each page is saved under the test's tmp_path (kept by pytest for the last
runs) for a person to look at.

Chromium comes from Debian (`make chromium`, as `make prometheus`); Playwright launches
it by path, with no browser download of its own. Without it the test skips, or fails
when CI=true.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import Engine, func, select

from tests.demo_county import record_demo_county
from tests.test_web import AUDITOR, web_settings
from watchdog.history import queries
from watchdog.store import schema
from watchdog.web.server import WebServer

# The Debian package's real binary; /usr/bin/chromium is a shell wrapper around it.
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium",)


def chromium_path() -> str:
    for path in CHROMIUM_PATHS:
        if Path(path).is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("chromium")
    message = f"chromium not found at {', '.join(CHROMIUM_PATHS)} (Debian package chromium)"
    if found is None and os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: the browser test must run; see `make chromium`)")
    if found is None:
        pytest.skip(message + "; `make chromium` installs it")
    return found


@pytest.fixture
def base_url(store: Engine, store_url: str, tmp_path: Path) -> Iterator[str]:
    """The real server on a free port over the demo county's history."""
    record_demo_county(store, store_url, tmp_path / "county")
    server = WebServer(store, web_settings(port=0))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture
def chromium() -> str:
    return chromium_path()


@pytest.fixture
def page(chromium: str, base_url: str) -> Iterator[Page]:
    """A page of headless chromium, found before the demo county is recorded."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            context = browser.new_context(
                base_url=base_url, viewport={"width": 1400, "height": 900}, locale="zh-CN"
            )
            context.set_default_timeout(15_000)
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def busiest_department(store: Engine) -> tuple[str, str, int]:
    """The department with the most violations: its code, name (from the cases, as the
    pages show it) and count."""
    v = schema.violations
    with store.connect() as connection:
        code, count = connection.execute(
            select(v.c.dept_code, func.count())
            .where(v.c.dept_code.is_not(None))
            .group_by(v.c.dept_code)
            .order_by(func.count().desc(), v.c.dept_code)
            .limit(1)
        ).one()
        name = queries.department_names(connection, {code}).get(code)
    assert name, f"department {code} has no name in the demo county"
    return str(code), name, int(count)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_auditor_filters_opens_a_violation_its_notice_and_the_summary(
    page: Page, store: Engine, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # Unauthenticated, the console sends the browser to its login page.
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.get_by_label("访问令牌").fill(AUDITOR)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(re.compile(r"/console/$"))
    expect(page.get_by_role("heading", name="违规记录")).to_be_visible()
    page.screenshot(path=shots / "1-list.png", full_page=True)

    # Filter by the busiest department: exactly its violations are listed.
    code, name, count = busiest_department(store)
    page.locator("select[name=dept]").select_option(code)
    page.get_by_role("button", name="筛选").click()
    expect(page).to_have_url(re.compile(rf"[?&]dept={code}(&|$)"))
    expect(page.get_by_text(f"共 {count} 条")).to_be_visible()
    rows = page.locator("main table tbody tr")
    expect(rows.first).to_be_visible()
    listed = rows.count()
    assert listed == min(count, 50), (listed, count)
    for department in rows.locator("td:nth-child(4)").all_inner_texts():
        assert department == name
    page.screenshot(path=shots / "2-filtered.png", full_page=True)

    # Open a violation that has a notice: its evidence and timeline are on the page.
    violation_id = first_noticed_violation(store, code)
    page.locator(f'a[href="/console/violations/{violation_id}"]').first.click()
    expect(page).to_have_url(re.compile(rf"/console/violations/{violation_id}$"))
    expect(page.get_by_role("heading", name=f"违规记录 {violation_id}")).to_be_visible()
    expect(page.get_by_role("heading", name="证据")).to_be_visible()
    evidence = page.locator("h2:text-is('证据') ~ table").first
    keys = evidence.locator("tbody tr td:first-child").all_inner_texts()
    assert set(recorded_evidence(store, violation_id)) <= set(keys), keys
    expect(page.get_by_role("heading", name="处理过程")).to_be_visible()
    timeline = page.locator("h2:text-is('处理过程') + table tbody tr")
    expect(timeline.first).to_contain_text("发现违规")
    expect(timeline.filter(has_text="通知书已发出").first).to_be_visible()
    assert timeline.count() >= 2
    page.screenshot(path=shots / "3-violation.png", full_page=True)

    # Follow the notice from the timeline.
    number = timeline.locator("a[href^='/console/notices/']").first.inner_text()
    timeline.locator(f'a[href="/console/notices/{number}"]').first.click()
    expect(page).to_have_url(re.compile(rf"/console/notices/{number}$"))
    expect(page.get_by_role("heading", name=re.compile(number))).to_be_visible()
    expect(page.locator("dl.fields")).to_contain_text(name)
    expect(page.get_by_role("heading", name="流转记录")).to_be_visible()
    page.screenshot(path=shots / "4-notice.png", full_page=True)

    # The department summary, from the header; the department's total is its count.
    page.get_by_role("link", name="部门汇总").click()
    expect(page).to_have_url(re.compile(r"/console/summary$"))
    page.locator("select[name=by]").select_option("dept")
    page.get_by_role("button", name="汇总").click()
    row = page.locator("main table tbody tr").filter(has_text=name)
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text(str(count))
    page.screenshot(path=shots / "5-summary.png", full_page=True)

    for shot in shots.iterdir():
        assert shot.stat().st_size > 10_000, shot  # a rendered page, not a blank one


def first_noticed_violation(store: Engine, dept_code: str) -> int:
    v, nv = schema.violations, schema.notice_violations
    with store.connect() as connection:
        return int(
            connection.execute(
                select(func.min(v.c.id))
                .join(nv, nv.c.violation_id == v.c.id)
                .where(v.c.dept_code == dept_code)
            ).scalar_one()
        )


def recorded_evidence(store: Engine, violation_id: int) -> list[str]:
    v = schema.violations
    with store.connect() as connection:
        evidence = connection.execute(
            select(v.c.evidence).where(v.c.id == violation_id)
        ).scalar_one()
    assert evidence, f"violation {violation_id} has no evidence"
    return list(evidence)
