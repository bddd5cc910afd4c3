"""The console: login with the API's token, then the Chinese pages over the recorded
history of tests/test_history.py."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

# One recorded store per backend for the module (the notice test's acknowledgement is
# the only change, and no other test here looks at that notice's state).
from tests.test_history import (
    BACKENDS,
    MATTER,
    SCJGJ_NAME,
    ZJJ_NAME,
    module_history,
    module_store,
    module_store_url,
)
from tests.test_web import AUDITOR, SUPERVISOR, notice_of, web_settings
from watchdog.history import export
from watchdog.web.api import create_app

recorded_url = pytest.fixture(scope="module", params=BACKENDS, name="store_url")(module_store_url)
recorded_store = pytest.fixture(scope="module", name="store")(module_store)
recorded_history = pytest.fixture(scope="module", name="history")(module_history)


@pytest.fixture
def app_client(store: Engine, history: dict[str, int]) -> Iterator[TestClient]:
    with TestClient(create_app(store, web_settings()), raise_server_exceptions=True) as client:
        yield client


def logged_in(client: TestClient, token: str) -> TestClient:
    response = client.post("/console/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303
    return client


def listed_ids(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'href="/console/violations/(\d+)"', html)}


def test_the_console_asks_for_the_token_and_keeps_it_in_a_strict_httponly_cookie(
    app_client: TestClient,
) -> None:
    first = app_client.get("/console/", follow_redirects=False)
    assert (first.status_code, first.headers["location"]) == (303, "/console/login")
    form = app_client.get("/console/login")
    assert form.status_code == 200 and "访问令牌" in form.text
    wrong = app_client.post("/console/login", data={"token": "guess"})
    assert wrong.status_code == 401 and "令牌无效" in wrong.text
    good = app_client.post("/console/login", data={"token": AUDITOR}, follow_redirects=False)
    cookie = good.headers["set-cookie"]
    assert cookie.startswith("watchdog_token=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert app_client.get("/console/").status_code == 200
    out = app_client.post("/console/logout", follow_redirects=False)
    assert (
        'watchdog_token=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    )


def test_the_violation_list_filters_by_department_and_links_a_csv_export(
    app_client: TestClient, history: dict[str, int]
) -> None:
    client = logged_in(app_client, AUDITOR)
    everything = client.get("/console/")
    assert everything.status_code == 200
    for text in ("违规记录", "筛选", "导出 CSV", SCJGJ_NAME, ZJJ_NAME, "红牌", "黄牌", "已解除"):
        assert text in everything.text, text
    assert listed_ids(everything.text) == set(history.values())

    scjgj = client.get("/console/?dept=SCJGJ&severity=&state=&opened_from=")
    assert scjgj.status_code == 200
    assert listed_ids(scjgj.text) == {history["F1"], history["F3"]}
    assert "共 <strong>2</strong> 条" in scjgj.text
    link = re.search(r'href="(/console/export\.csv\?[^"]*)"', scjgj.text)
    assert link is not None
    csv_response = client.get(link.group(1).replace("&amp;", "&"))
    assert csv_response.content.startswith(b"\xef\xbb\xbf")
    rows = export.read_csv(csv_response.content.decode("utf-8"))
    assert {r["id"] for r in rows} == {history["F1"], history["F3"]}
    assert {r["dept_name"] for r in rows} == {SCJGJ_NAME}

    paged = client.get("/console/?sort=id&page_size=2&page=2")
    assert listed_ids(paged.text) == {history["F2"], history["F3"]}
    assert "上一页" in paged.text and "下一页" in paged.text

    bad = client.get("/console/?severity=purple")
    assert bad.status_code == 400
    assert "筛选条件有误" in bad.text and "purple" in bad.text


def test_a_violation_page_shows_evidence_timeline_and_notices(
    app_client: TestClient, store: Engine, history: dict[str, int]
) -> None:
    client = logged_in(app_client, AUDITOR)
    page = client.get(f"/console/violations/{history['F1']}")
    assert page.status_code == 200
    number = notice_of(store, history["F1"])
    for text in (
        "办件超期",
        "证据",
        "处理过程",
        "整改通知书",
        SCJGJ_NAME,
        MATTER,
        "超期未办结",  # the evidence note
        "发现违规（预警）",
        "升级：预警 → 黄牌",
        "2026-04-10 09:00",
        "2026-04-15 09:00",
        "已投递至 scj@example.gov.cn",
        number,
    ):
        assert text in page.text, text
    missing = client.get("/console/violations/424242")
    assert missing.status_code == 404 and "违规记录 424242 不存在" in missing.text


def test_a_notice_page_shows_its_record_and_offers_actions_only_to_supervisors(
    app_client: TestClient, store: Engine, history: dict[str, int]
) -> None:
    number = notice_of(store, history["F3"])
    auditor = logged_in(app_client, AUDITOR)
    page = auditor.get(f"/console/notices/{number}")
    assert page.status_code == 200
    for text in (number, "流转记录", "送达记录", "scj@example.gov.cn", "通知书正文", "已送达"):
        assert text in page.text, text
    assert "监察操作" not in page.text
    refused = auditor.post(f"/console/notices/{number}/ack")
    assert refused.status_code == 403 and "may only read" in refused.text

    supervisor = logged_in(app_client, SUPERVISOR)
    assert "监察操作" in supervisor.get(f"/console/notices/{number}").text
    done = supervisor.post(f"/console/notices/{number}/ack", follow_redirects=True)
    assert done.status_code == 200
    assert "已签收" in done.text and "监察科李四" in done.text
    again = supervisor.post(f"/console/notices/{number}/ack")
    assert again.status_code == 409 and "cannot ack" in again.text


def test_the_department_summary_counts_by_month(
    app_client: TestClient, history: dict[str, int]
) -> None:
    client = logged_in(app_client, AUDITOR)
    page = client.get("/console/summary")
    assert page.status_code == 200
    for text in (
        "部门违规汇总",
        SCJGJ_NAME,
        ZJJ_NAME,
        "<td>2026-06</td>",
        "<td>2026-07</td>",
        "合计",
    ):
        assert text in page.text, text
    by_dept = client.get("/console/summary?by=dept&opened_from=2026-04-01&opened_to=2026-06-30")
    assert by_dept.status_code == 200 and "<td>2026-06</td>" not in by_dept.text
    assert 'href="/console/?dept=SCJGJ"' in by_dept.text
