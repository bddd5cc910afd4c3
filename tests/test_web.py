"""The auditors' API: tokens and roles, the documented JSON of every endpoint, limits,
and clear 4xx answers (never a 500) for whatever a client sends.

The store is the recorded history of tests/test_history.py (five violations, their
notices delivered through the outbox), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from tests.test_history import SCJGJ_NAME, fill_history
from watchdog.history import export
from watchdog.notices import lifecycle
from watchdog.store import schema
from watchdog.web.api import create_app
from watchdog.web.openapi import openapi_document
from watchdog.web.settings import TokenSettings, WebSettings

AUDITOR, SUPERVISOR = "auditor-secret-1", "supervisor-secret-2"
AS_AUDITOR = {"Authorization": f"Bearer {AUDITOR}"}
AS_SUPERVISOR = {"Authorization": f"Bearer {SUPERVISOR}"}
DOCUMENT = openapi_document()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def web_settings(**overrides: Any) -> WebSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "tokens": (
            TokenSettings("审计处张三", "auditor", sha256(AUDITOR)),
            TokenSettings("监察科李四", "supervisor", sha256(SUPERVISOR)),
        ),
        "rate_per_minute": 6000,
        "rate_burst": 1000,
        "max_body_bytes": 4096,
    }
    values.update(overrides)
    return WebSettings(**values)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def history(store: Engine, tmp_path: Path) -> dict[str, int]:
    return fill_history(store, tmp_path / "outbox")


@pytest.fixture
def client(store: Engine, history: dict[str, int]) -> Iterator[TestClient]:
    # raise_server_exceptions: any error of ours fails the test instead of becoming a 500.
    with TestClient(create_app(store, web_settings()), raise_server_exceptions=True) as client:
        yield client


def notice_of(store: Engine, violation_id: int) -> str:
    nv, n = schema.notice_violations, schema.notices
    with store.connect() as connection:
        return str(
            connection.execute(
                select(n.c.number)
                .join(nv, nv.c.notice_id == n.c.id)
                .where(nv.c.violation_id == violation_id)
            ).scalar_one()
        )


# -- a small checker for the parts of JSON Schema the document uses -----------------


def resolve(schema_: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema_:
        schema_ = DOCUMENT["components"]["schemas"][schema_["$ref"].rsplit("/", 1)[1]]
    return schema_


def conforms(value: Any, schema_: dict[str, Any], where: str = "$") -> None:
    schema_ = resolve(schema_)
    for part in schema_.get("allOf", ()):
        conforms(value, part, where)
    types = schema_.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        python = {
            "string": str,
            "integer": int,
            "boolean": bool,
            "object": dict,
            "array": list,
            "null": type(None),
        }
        assert any(
            isinstance(value, python[name]) and not (name == "integer" and isinstance(value, bool))
            for name in names
        ), f"{where}: {value!r} is not {names}"
    if "enum" in schema_:
        assert value in schema_["enum"], f"{where}: {value!r} not in {schema_['enum']}"
    if isinstance(value, dict) and "properties" in schema_:
        for key in schema_.get("required", ()):
            assert key in value, f"{where}: {key} missing"
        for key, sub in schema_["properties"].items():
            if key in value:
                conforms(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema_:
        for index, item in enumerate(value):
            conforms(item, schema_["items"], f"{where}[{index}]")


def documented(path: str, method: str = "get") -> dict[str, Any]:
    response = DOCUMENT["paths"][path][method]["responses"]["200"]
    schema_: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema_


# -- tokens and roles ----------------------------------------------------------------

READS = [
    "/api/v1/violations",
    "/api/v1/violations/1",
    "/api/v1/violations/export",
    "/api/v1/summary",
    "/api/v1/notices/JC-2026-000001",
    "/api/v1/openapi.json",
]
WRITES = [
    "/api/v1/notices/JC-2026-000001/ack",
    "/api/v1/notices/JC-2026-000001/close",
    "/api/v1/notices/JC-2026-000001/reopen",
]


@pytest.mark.parametrize("backend", ["sqlite"])  # decided before any query
def test_no_token_or_an_unknown_token_gets_401_on_every_endpoint(client: TestClient) -> None:
    for path in READS + WRITES:
        method = client.post if path in WRITES else client.get
        for headers, message in (
            ({}, 'authentication required: send "Authorization: Bearer <token>"'),
            ({"Authorization": "Bearer not-a-token"}, "invalid token"),
            (
                {"Authorization": f"Basic {AUDITOR}"},
                'authentication required: send "Authorization: Bearer <token>"',
            ),
        ):
            response = method(path, headers=headers)
            assert response.status_code == 401, path
            assert response.json() == {"error": message}
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_an_auditor_may_not_write_and_nothing_changes(
    client: TestClient, store: Engine, history: dict[str, int]
) -> None:
    number = notice_of(store, history["F1"])
    for action in ("ack", "close", "reopen"):
        response = client.post(f"/api/v1/notices/{number}/{action}", headers=AS_AUDITOR)
        assert response.status_code == 403
        assert response.json() == {
            "error": f"role auditor may only read; {action} needs supervisor"
        }
    with store.connect() as connection:
        events = connection.execute(select(schema.notice_events.c.event)).scalars().all()
    assert "acknowledged" not in events


def test_a_supervisor_acknowledges_closes_and_reopens_through_the_lifecycle(
    client: TestClient, store: Engine, history: dict[str, int]
) -> None:
    number = notice_of(store, history["F1"])
    ack = client.post(f"/api/v1/notices/{number}/ack", headers=AS_SUPERVISOR)
    assert ack.status_code == 200
    assert ack.json() == {
        "number": number,
        "action": "ack",
        "state_from": "delivered",
        "state": "acknowledged",
        "by": "监察科李四",
    }
    conforms(ack.json(), documented("/api/v1/notices/{number}/ack", "post"))
    too_early = client.post(f"/api/v1/notices/{number}/close", headers=AS_SUPERVISOR)
    assert too_early.status_code == 409
    assert too_early.json() == {
        "error": f"notice {number} is acknowledged: cannot close it (only from rectified)"
    }
    with store.begin() as connection:  # the department's reply comes by the CLI's path
        lifecycle.rectify(connection, number, reply="已整改完毕", by="部门", at=lifecycle_now())
    assert (
        client.post(f"/api/v1/notices/{number}/close", headers=AS_SUPERVISOR).json()["state"]
        == "closed"
    )
    reopened = client.post(
        f"/api/v1/notices/{number}/reopen",
        headers=AS_SUPERVISOR,
        json={"reason": "整改材料不全"},
    )
    assert reopened.json()["state"] == "acknowledged"
    detail = client.get(f"/api/v1/notices/{number}", headers=AS_AUDITOR).json()
    assert [(e["event"], e["actor"], e["detail"]) for e in detail["events"]][2:] == [
        ("acknowledged", "监察科李四", None),
        ("rectified", "部门", "已整改完毕"),
        ("closed", "监察科李四", None),
        ("reopened", "监察科李四", "整改材料不全"),
    ]
    missing = client.post("/api/v1/notices/JC-2026-999999/ack", headers=AS_SUPERVISOR)
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "notice JC-2026-999999 not found"},
    )


def lifecycle_now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 7, 3, 2, tzinfo=UTC)


# -- the documented JSON ---------------------------------------------------------------


def test_each_endpoint_returns_the_documented_json(
    client: TestClient, store: Engine, history: dict[str, int]
) -> None:
    page = client.get("/api/v1/violations?dept=SCJGJ&sort=id&page_size=1", headers=AS_AUDITOR)
    assert page.status_code == 200
    conforms(page.json(), documented("/api/v1/violations"))
    body = page.json()
    assert (body["total"], body["page"], body["page_size"], body["pages"]) == (2, 1, 1, 2)
    assert body["items"][0]["id"] == history["F1"]
    assert body["items"][0]["dept_name"] == SCJGJ_NAME
    assert set(body["items"][0]) == set(
        DOCUMENT["components"]["schemas"]["Violation"]["properties"]
    )

    detail = client.get(f"/api/v1/violations/{history['F1']}", headers=AS_AUDITOR)
    conforms(detail.json(), documented("/api/v1/violations/{violation_id}"))
    assert [e["event"] for e in detail.json()["events"]] == ["opened", "upgraded"]
    assert detail.json()["notices"][0]["deliveries"][0]["state"] == "sent"

    summary = client.get("/api/v1/summary?by=dept", headers=AS_AUDITOR)
    conforms(summary.json(), documented("/api/v1/summary"))
    assert summary.json()["rows"][0] == {
        "dept_code": "SCJGJ",
        "dept_name": SCJGJ_NAME,
        "total": 2,
        "warning": 0,
        "yellow": 1,
        "red": 1,
        "open": 2,
        "resolved": 0,
    }

    number = notice_of(store, history["F3"])
    notice = client.get(f"/api/v1/notices/{number}", headers=AS_AUDITOR)
    conforms(notice.json(), documented("/api/v1/notices/{number}"))
    assert [v["id"] for v in notice.json()["violations"]] == [history["F3"]]

    document = client.get("/api/v1/openapi.json", headers=AS_AUDITOR)
    assert document.json() == json.loads(json.dumps(DOCUMENT))
    routes = {
        (method.lower(), route.path)
        for route in client.app.routes  # type: ignore[attr-defined]
        if route.path.startswith("/api/")
        for method in (route.methods or ())
        if method != "HEAD"
    }
    described = {(m, p) for p, item in DOCUMENT["paths"].items() for m in item}
    assert routes == described


def test_exports_stream_csv_with_bom_and_jsonl_that_round_trip(
    client: TestClient, history: dict[str, int]
) -> None:
    jsonl = client.get("/api/v1/violations/export?format=jsonl&sort=id", headers=AS_AUDITOR)
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    records = export.read_jsonl(jsonl.text)
    assert [r["id"] for r in records] == sorted(history.values())
    csv_response = client.get("/api/v1/violations/export?sort=id", headers=AS_AUDITOR)
    assert csv_response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in csv_response.headers["content-disposition"]
    assert csv_response.content.startswith(b"\xef\xbb\xbf")
    assert export.read_csv(csv_response.content.decode("utf-8")) == records
    only = client.get("/api/v1/violations/export?format=jsonl&state=resolved", headers=AS_AUDITOR)
    assert [r["id"] for r in export.read_jsonl(only.text)] == [history["F2"]]


# -- bad input: always a clear 4xx -----------------------------------------------------

BAD_REQUESTS = [
    (
        "/api/v1/violations?severity=purple",
        "malformed parameter severity: expected one of warning, yellow, red, got 'purple'",
    ),
    (
        "/api/v1/violations?opened_from=yesterday",
        "malformed parameter opened_from: expected a date like \"2026-06-30\", got 'yesterday'",
    ),
    (
        "/api/v1/violations?page_size=100000",
        "malformed parameter page_size: must be 1..500, got 100000",
    ),
    (
        "/api/v1/violations?page=abc",
        "malformed parameter page: expected a positive whole number, got 'abc'",
    ),
    ("/api/v1/violations?dept=%00", "malformed parameter dept: not a valid value, got '\\x00'"),
    ("/api/v1/violations?colour=red", None),
    ("/api/v1/violations?sort=severity;drop", None),
    (
        "/api/v1/violations/export?format=xlsx",
        "malformed parameter format: expected one of csv, jsonl, got ['xlsx']",
    ),
    ("/api/v1/violations/export?page=2", None),
    ("/api/v1/summary?by=year", None),
    ("/api/v1/violations/0", "malformed parameter violation_id: expected 1..2147483647, got '0'"),
    ("/api/v1/violations/-1", None),
    ("/api/v1/violations/1.5", None),
    ("/api/v1/violations/99999999999999999999999", None),
    ("/api/v1/violations/%EF%BC%91", None),  # a full-width digit
    ("/api/v1/notices/%27%3B--", 'malformed parameter number: not a notice number, got "\';--"'),
]


@pytest.mark.parametrize("backend", ["sqlite"])  # input checks come before any query
def test_a_malformed_parameter_gets_400_naming_it(client: TestClient) -> None:
    for path, message in BAD_REQUESTS:
        response = client.get(path, headers=AS_AUDITOR)
        assert response.status_code == 400, (path, response.text)
        error = response.json()["error"]
        if message is not None:
            assert error == message
        else:
            assert error.startswith("malformed parameter "), error


ODD_REQUESTS = [
    "/api/v1/violations?dept=" + "A" * 5000,
    "/api/v1/violations?case=%E4%B8%AD%E6%96%87&source=%F0%9F%98%80",
    "/api/v1/violations?rule=%FF%FE",
    "/api/v1/violations?opened_from=&opened_to=&page=&sort=",
    "/api/v1/violations?sort=-id,-id,severity&page=100000",
    "/api/v1/violations?dept=a,,b,&dept=",
    "/api/v1/summary?opened_from=1900-01-01&opened_to=2999-12-31",
    "/api/v1/notices/" + "N" * 200,
    "/api/v1/violations/2147483647",
    "/api/v1/nothing-here",
]


def test_odd_input_never_gets_a_500(client: TestClient) -> None:
    for path in ODD_REQUESTS:
        response = client.get(path, headers=AS_AUDITOR)
        assert 200 <= response.status_code < 500, (path, response.text)
        assert response.headers["content-type"].startswith("application/json")
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}


@pytest.mark.parametrize("backend", ["sqlite"])  # decided before any query
def test_malformed_transition_bodies_get_400(
    client: TestClient, store: Engine, history: dict[str, int]
) -> None:
    number = notice_of(store, history["F1"])
    url = f"/api/v1/notices/{number}/ack"
    for content, message in (
        (b"{not json", "malformed body: expected a JSON object"),
        (b"[1, 2]", "malformed body: expected a JSON object, got list"),
        (b'{"who": "me"}', "malformed body: unknown field 'who' (known: reason)"),
        (
            b'{"reason": 5}',
            "malformed body: reason must be text of at most 2000 characters, got '5'",
        ),
        (b"\xff\xfe", "malformed body: expected a JSON object"),
    ):
        response = client.post(url, headers=AS_SUPERVISOR, content=content)
        assert (response.status_code, response.json()) == (400, {"error": message})


@pytest.mark.parametrize("backend", ["sqlite"])  # decided before any query
def test_a_huge_body_gets_413_whether_announced_or_streamed(
    client: TestClient, store: Engine, history: dict[str, int]
) -> None:
    number = notice_of(store, history["F1"])
    url = f"/api/v1/notices/{number}/reopen"
    announced = client.post(url, headers=AS_SUPERVISOR, content=b"x" * 10_000)
    assert announced.status_code == 413
    assert announced.json() == {"error": "request body too large: 10000 bytes, the limit is 4096"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"y" * 1000

    streamed = client.post(url, headers=AS_SUPERVISOR, content=chunks())
    assert streamed.status_code == 413
    assert streamed.json() == {"error": "request body too large: more than 4096 bytes"}
    with store.connect() as connection:
        states = connection.execute(select(schema.notices.c.state)).scalars().all()
    assert "acknowledged" not in states


def test_unknown_paths_and_methods_answer_json_errors(client: TestClient) -> None:
    missing = client.get("/api/v1/violationz", headers=AS_AUDITOR)
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "not found: GET /api/v1/violationz"},
    )
    wrong = client.delete("/api/v1/violations", headers=AS_AUDITOR)
    assert (wrong.status_code, wrong.json()) == (
        405,
        {"error": "method DELETE not allowed on /api/v1/violations"},
    )
    absent = client.get("/api/v1/violations/424242", headers=AS_AUDITOR)
    assert (absent.status_code, absent.json()) == (404, {"error": "violation 424242 not found"})


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_error_of_ours_is_a_json_500_without_a_trace(store: Engine) -> None:
    store.dispose()
    with store.begin() as connection:  # a store the API cannot read
        connection.exec_driver_sql("DROP TABLE violation_events")
    app = create_app(store, web_settings())
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/violations/1", headers=AS_AUDITOR)
        page = client.get("/api/v1/violations", headers=AS_AUDITOR)
    assert page.status_code == 200  # the listing does not need the events
    assert response.status_code in (404, 500)
    if response.status_code == 500:
        assert response.json() == {"error": "internal error; the details are in the daemon's log"}
        assert "Traceback" not in response.text and "sqlite" not in response.text.lower()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_each_token_has_its_own_rate_limit_and_gets_429_over_it(
    store: Engine, history: dict[str, int]
) -> None:
    clock = FakeMonotonic()
    app = create_app(store, web_settings(rate_per_minute=60, rate_burst=3), rate_clock=clock)
    with TestClient(app) as client:
        codes = [client.get("/api/v1/summary", headers=AS_AUDITOR).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        over = client.get("/api/v1/summary", headers=AS_AUDITOR)
        assert over.json() == {"error": "rate limit exceeded: try again in 1 s"}
        assert over.headers["Retry-After"] == "2"
        assert client.get("/api/v1/summary", headers=AS_SUPERVISOR).status_code == 200
        clock.now += 1.0  # one request a second comes back
        assert client.get("/api/v1/summary", headers=AS_AUDITOR).status_code == 200
        assert client.get("/api/v1/summary", headers=AS_AUDITOR).status_code == 429
        # Guessing tokens is limited per client too.
        guesses = [
            client.get("/api/v1/summary", headers={"Authorization": f"Bearer guess{n}"})
            for n in range(4)
        ]
        assert [g.status_code for g in guesses] == [401, 401, 401, 429]
