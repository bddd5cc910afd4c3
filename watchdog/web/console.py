"""The web console: server-rendered Chinese pages over the same queries as the API.

No build step and no script: Jinja2 templates with their CSS inline. The browser
holds the token in an HttpOnly, SameSite=Strict cookie set by the login form, so
pages and the supervisor's buttons (plain POST forms) need nothing else; SameSite
keeps other sites from posting those forms with it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from watchdog.history import queries
from watchdog.history.filters import (
    DATE_FILTERS,
    QUERY_PARAMETERS,
    SEVERITIES,
    STATES,
    TEXT_FILTERS,
    FilterError,
    Query,
    parse_query,
)
from watchdog.notices.wording import FINDING_LABELS, SEVERITY_LABELS, STATE_LABELS, describe
from watchdog.web.guards import COOKIE, principal_of

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
VIOLATION_STATE_LABELS = {"open": "未解除", "resolved": "已解除"}
EVENT_LABELS = {
    "opened": "发现违规",
    "upgraded": "升级",
    "resolved": "解除",
    "reopened": "重新发现",
    "escalated": "督办",  # its notice went unrectified (watchdog.notices.escalation)
    "contested": "数据被修改（存疑）",  # a source revision would have cleared it
}
KIND_LABELS = {
    "overdue": "超期",
    "procedure": "违反程序",
    "fee": "收费",
    "inspection": "重复检查",
    "pattern": "模式规则",
    "data_altered": "数据被修改",
}
ACTION_LABELS = {"ack": "签收", "close": "办结（关闭）", "reopen": "重新打开"}
SORT_CHOICES = (
    ("-opened_at", "发现时间（新→旧）"),
    ("opened_at", "发现时间（旧→新）"),
    ("-severity,-opened_at", "等级（重→轻）"),
    ("dept,-opened_at", "部门"),
    ("-resolved_at", "解除时间（新→旧）"),
    ("id", "编号"),
)


def _local(moment: str | None) -> str:
    """ISO time → `2026-03-09 18:00` (already in local time)."""
    return moment[:16].replace("T", " ") if moment else ""


_environment.filters["local"] = _local
# Evidence lists shown as JSON keep Chinese readable (tojson escapes HTML characters).
_environment.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": True}
_environment.globals.update(
    severity_labels=SEVERITY_LABELS,
    state_labels=STATE_LABELS,
    violation_state_labels=VIOLATION_STATE_LABELS,
    finding_labels=FINDING_LABELS,
    kind_labels=KIND_LABELS,
    event_labels=EVENT_LABELS,
    action_labels=ACTION_LABELS,
)


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _environment.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code)


def error_page(status: int, message: str) -> Response:
    return render("error.html.j2", status, status=status, message=message)


def _params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


def _store(request: Request) -> Engine:
    store: Engine = request.app.state.store
    return store


def _list_page(request: Request) -> Response:
    params = _params(request)
    error = None
    try:
        query = parse_query(params, allowed=QUERY_PARAMETERS)
    except FilterError as exc:
        error = f"筛选条件有误：{exc}"
        query = Query()
    with _store(request).connect() as connection:
        page = queries.list_violations(connection, query.filter, query.sort, query.page)
        departments = queries.departments(connection)
    filter_params = query.filter.as_params()
    keep = {**filter_params, "sort": query.sort.text(), "page_size": str(query.page.size)}
    return render(
        "violations.html.j2",
        400 if error else 200,
        principal=principal_of(request.state),
        page=page,
        error=error,
        filter=query.filter,
        sort=query.sort.text(),
        sort_choices=SORT_CHOICES,
        departments=departments,
        severities=SEVERITIES,
        states=STATES,
        text_filters=TEXT_FILTERS,
        date_filters=DATE_FILTERS,
        export_link="/console/export.csv?"
        + urlencode({**filter_params, "sort": query.sort.text()}),
        page_link=lambda number: "/console/?" + urlencode({**keep, "page": str(number)}),
    )


async def violation_list(request: Request) -> Response:
    return await run_in_threadpool(_list_page, request)


def _export(request: Request) -> Response:
    from watchdog.web.api import export_response

    params = _params(request)
    try:
        query = parse_query(params, allowed=(*TEXT_FILTERS, *DATE_FILTERS, "sort"))
    except FilterError as exc:
        return error_page(400, f"筛选条件有误：{exc}")
    return export_response(_store(request), query, "csv")


async def export_csv(request: Request) -> Response:
    return await run_in_threadpool(_export, request)


def _timeline(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """Violation events, notice events and deliveries, in time order."""
    entries = []
    for event in detail["events"]:
        what = EVENT_LABELS.get(event["event"], event["event"])
        if event["event"] == "upgraded":
            what += f"：{SEVERITY_LABELS.get(event['severity_from'], event['severity_from'])} → "
            what += SEVERITY_LABELS.get(event["severity_to"], event["severity_to"] or "")
        elif event["severity_to"]:
            what += f"（{SEVERITY_LABELS.get(event['severity_to'], event['severity_to'])}）"
        if event["reason"]:
            what += f"：{event['reason']}"
        entries.append({"at": event["at"], "actor": event["actor"], "what": what, "notice": None})
    for notice in detail["notices"]:
        for event in notice["events"]:
            state = STATE_LABELS.get(event["state_to"], event["state_to"] or event["event"])
            what = f"通知书{state}" + (f"：{event['detail']}" if event["detail"] else "")
            entries.append(
                {
                    "at": event["at"],
                    "actor": event["actor"],
                    "what": what,
                    "notice": notice["number"],
                }
            )
        for delivery in notice["deliveries"]:
            if delivery["delivered_at"]:
                entries.append(
                    {
                        "at": delivery["delivered_at"],
                        "actor": "watchdog",
                        "what": f"已投递至 {delivery['recipient']}",
                        "notice": notice["number"],
                    }
                )
    return sorted(entries, key=lambda e: datetime.fromisoformat(e["at"]))


def _violation_page(request: Request) -> Response:
    text = request.path_params["violation_id"]
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return error_page(400, f"违规编号应为数字，收到 {text!r}")
    with _store(request).connect() as connection:
        detail = queries.violation_detail(connection, int(text))
    if detail is None:
        return error_page(404, f"违规记录 {text} 不存在")
    try:
        sentences = describe(
            detail["kind"], detail["finding"], detail["evidence"], detail["rule"], queries.ZONE
        )
    except Exception:  # an unreadable evidence shape still leaves the raw table below
        log.exception("violation %s: evidence not describable", text)
        sentences = []
    return render(
        "violation.html.j2",
        principal=principal_of(request.state),
        v=detail,
        sentences=sentences,
        timeline=_timeline(detail),
    )


async def violation_page(request: Request) -> Response:
    return await run_in_threadpool(_violation_page, request)


def _notice_page(request: Request, message: str | None = None, status: int = 200) -> Response:
    from watchdog.web.api import notice_number

    number = notice_number(request.path_params["number"])
    with _store(request).connect() as connection:
        detail = queries.notice_detail(connection, number)
    if detail is None:
        return error_page(404, f"通知书 {number} 不存在")
    return render(
        "notice.html.j2",
        status,
        principal=principal_of(request.state),
        n=detail,
        message=message,
    )


async def notice_page(request: Request) -> Response:
    return await run_in_threadpool(_notice_page, request)


async def notice_action(request: Request) -> Response:
    """A supervisor's button on the notice page: through the same lifecycle as the API."""
    from watchdog.web.api import ApiError, apply_transition, notice_number

    action = request.path_params["action"]
    if action not in ACTION_LABELS:
        return error_page(404, f"没有这个操作：{action}")
    number = notice_number(request.path_params["number"])
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    reason = (form.get("reason") or [""])[0].strip()[:2000].replace("\x00", "") or None
    try:
        await run_in_threadpool(
            apply_transition,
            _store(request),
            number,
            action,
            principal_of(request.state),
            reason,
            request.app.state.clock(),
        )
    except ApiError as exc:
        return await run_in_threadpool(_notice_page, request, exc.message, exc.status)
    return RedirectResponse(f"/console/notices/{number}", status_code=303)


def _summary_page(request: Request) -> Response:
    params = _params(request)
    by = (params.pop("by", None) or ["dept-month"])[0]
    error = None
    if by not in queries.SUMMARY_GROUPINGS:
        error, by = f"by：应为 dept-month 或 dept，收到 {by!r}", "dept-month"
    try:
        query = parse_query(params, allowed=(*TEXT_FILTERS, *DATE_FILTERS))
    except FilterError as exc:
        error, query = f"筛选条件有误：{exc}", Query()
    with _store(request).connect() as connection:
        rows = queries.summary(connection, query.filter, by)
    totals = {
        name: sum(row[name] for row in rows)
        for name in ("total", "warning", "yellow", "red", "open", "resolved")
    }
    return render(
        "summary.html.j2",
        400 if error else 200,
        principal=principal_of(request.state),
        rows=rows,
        by=by,
        totals=totals,
        error=error,
        filter=query.filter,
    )


async def summary_page(request: Request) -> Response:
    return await run_in_threadpool(_summary_page, request)


async def login_form(request: Request) -> Response:
    return render("login.html.j2", error=None)


async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    principal = request.app.state.authenticator.identify(token)
    if principal is None:
        wait = request.app.state.limiter.take(
            f"login:{request.client.host if request.client else ''}"
        )
        if wait:
            return render(
                "login.html.j2", 429, error=f"尝试过于频繁，请 {max(1, round(wait))} 秒后再试"
            )
        return render("login.html.j2", 401, error="令牌无效，请核对后重新输入")
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", path="/", max_age=12 * 3600
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/console/login", login_form, methods=["GET"]),
        Route("/console/login", login, methods=["POST"]),
        Route("/console/logout", logout, methods=["POST"]),
        Route("/console/", violation_list),
        Route("/console", violation_list),
        Route("/console/export.csv", export_csv),
        Route("/console/violations/{violation_id}", violation_page),
        Route("/console/notices/{number}", notice_page),
        Route("/console/notices/{number}/{action}", notice_action, methods=["POST"]),
        Route("/console/summary", summary_page),
    ]
