"""The auditors' HTTP API (JSON under /api/v1) and the app that also serves the console.

Endpoints are plain functions over `watchdog.history.queries`; Starlette runs them in
its thread pool, so a slow query never blocks the event loop. Everything a client can
get wrong becomes a 4xx with `{"error": "..."}` naming the parameter and value; an
error of ours is logged with its traceback and answered 500 without one.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from watchdog.history import export, queries
from watchdog.history.filters import (
    DATE_FILTERS,
    TEXT_FILTERS,
    FilterError,
    Query,
    parse_query,
)
from watchdog.notices import lifecycle
from watchdog.web import console
from watchdog.web.guards import Authenticator, GuardMiddleware, Principal, RateLimiter, principal_of
from watchdog.web.openapi import openapi_document
from watchdog.web.settings import WebSettings

log = logging.getLogger(__name__)

FILTERS = (*TEXT_FILTERS, *DATE_FILTERS)
NOTICE_NUMBER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ID = 2**31 - 1
MAX_REASON = 2000
ACTIONS = {"ack": lifecycle.acknowledge, "close": lifecycle.close, "reopen": lifecycle.reopen}
Clock = Callable[[], datetime]


class ApiError(Exception):
    """A request the API refuses; status and a message naming what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def _params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


def request_query(request: Request, allowed: tuple[str, ...]) -> tuple[Query, dict[str, list[str]]]:
    """The filter, sort and page of a request; the parameters outside `allowed` that the
    caller reads itself are returned separately."""
    params = _params(request)
    own = {name: params.pop(name) for name in list(params) if name in ("format", "by")}
    try:
        return parse_query(params, allowed=allowed), own
    except FilterError as exc:
        raise ApiError(400, f"malformed parameter {exc}") from None


def _choice(own: dict[str, list[str]], name: str, choices: tuple[str, ...], default: str) -> str:
    values = own.get(name) or [default]
    if len(values) > 1 or values[0] not in choices:
        raise ApiError(
            400, f"malformed parameter {name}: expected one of {', '.join(choices)}, got {values!r}"
        )
    return values[0]


def violation_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and 1 <= int(text) <= MAX_ID):
        raise ApiError(400, f"malformed parameter violation_id: expected 1..{MAX_ID}, got {text!r}")
    return int(text)


def notice_number(text: str) -> str:
    if not NOTICE_NUMBER.match(text):
        raise ApiError(400, f"malformed parameter number: not a notice number, got {text!r}")
    return text


def store_of(request: Request) -> Engine:
    store: Engine = request.app.state.store
    return store


def list_violations(request: Request) -> Response:
    query, _ = request_query(request, (*FILTERS, "sort", "page", "page_size"))
    with store_of(request).connect() as connection:
        page = queries.list_violations(connection, query.filter, query.sort, query.page)
    return JSONResponse(page.as_json())


def export_violations(request: Request) -> Response:
    query, own = request_query(request, (*FILTERS, "sort"))
    export_format = _choice(own, "format", export.FORMATS, "csv")
    return export_response(store_of(request), query, export_format)


def export_response(store: Engine, query: Query, export_format: str) -> Response:
    records = queries.iter_violations(store, query.filter, query.sort)
    stamp = datetime.now(queries.ZONE).strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        export.chunks(records, export_format),
        media_type=export.MEDIA_TYPES[export_format],
        headers={
            "Content-Disposition": f'attachment; filename="violations-{stamp}.{export_format}"'
        },
    )


def show_violation(request: Request) -> Response:
    number = violation_id(request.path_params["violation_id"])
    with store_of(request).connect() as connection:
        detail = queries.violation_detail(connection, number)
    if detail is None:
        raise ApiError(404, f"violation {number} not found")
    return JSONResponse(detail)


def summary(request: Request) -> Response:
    query, own = request_query(request, FILTERS)
    by = _choice(own, "by", queries.SUMMARY_GROUPINGS, "dept-month")
    with store_of(request).connect() as connection:
        rows = queries.summary(connection, query.filter, by)
    return JSONResponse({"by": by, "rows": rows})


def show_notice(request: Request) -> Response:
    number = notice_number(request.path_params["number"])
    with store_of(request).connect() as connection:
        detail = queries.notice_detail(connection, number)
    if detail is None:
        raise ApiError(404, f"notice {number} not found")
    return JSONResponse(detail)


def apply_transition(
    store: Engine, number: str, action: str, principal: Principal, reason: str | None, at: datetime
) -> dict[str, Any]:
    """Acknowledge, close or reopen a notice through the lifecycle, as `principal`."""
    if not principal.may_write:
        raise ApiError(403, f"role {principal.role} may only read; {action} needs supervisor")
    try:
        with store.begin() as connection:
            if action == "reopen":
                before = lifecycle.reopen(
                    connection, number, by=principal.name, at=at, reason=reason
                )
            else:
                before = ACTIONS[action](connection, number, by=principal.name, at=at)
    except lifecycle.NoticeNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except lifecycle.NoticeStateError as exc:
        raise ApiError(409, str(exc)) from None
    state = lifecycle.TRANSITIONS[action].target
    log.info("notice %s: %s by %s (%s -> %s)", number, action, principal.name, before, state)
    return {
        "number": number,
        "action": action,
        "state_from": before,
        "state": state,
        "by": principal.name,
    }


def _transition_body(body: bytes) -> str | None:
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed body: expected a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"malformed body: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"reason"})
    if unknown:
        raise ApiError(400, f"malformed body: unknown field {unknown[0]!r} (known: reason)")
    reason = data.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise ApiError(
            400,
            f"malformed body: reason must be text of at most {MAX_REASON} "
            f"characters, got {str(reason)[:40]!r}",
        )
    if isinstance(reason, str) and "\x00" in reason:
        raise ApiError(400, "malformed body: reason contains a NUL character")
    return reason


def transition_endpoint(action: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        principal = principal_of(request.state)
        number = notice_number(request.path_params["number"])
        if not principal.may_write:  # before reading the body: the answer is no anyway
            raise ApiError(403, f"role {principal.role} may only read; {action} needs supervisor")
        reason = _transition_body(await request.body())
        clock: Clock = request.app.state.clock
        result = await run_in_threadpool(
            apply_transition, store_of(request), number, action, principal, reason, clock()
        )
        return JSONResponse(result)

    return endpoint


def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


def api_routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/violations", list_violations),
        Route("/api/v1/violations/export", export_violations),
        Route("/api/v1/violations/{violation_id}", show_violation),
        Route("/api/v1/summary", summary),
        Route("/api/v1/notices/{number}", show_notice),
        *(
            Route(
                f"/api/v1/notices/{{number}}/{action}",
                transition_endpoint(action),
                methods=["POST"],
            )
            for action in ACTIONS
        ),
        Route("/api/v1/openapi.json", openapi),
    ]


def error_response(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return console.error_page(status, message)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"not found: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    response = error_response(request, exc.status_code, message)
    response.headers.update(exc.headers or {})
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "internal error; the details are in the daemon's log")


def create_app(
    store: Engine,
    settings: WebSettings,
    *,
    clock: Clock = lambda: datetime.now(UTC),
    rate_clock: Callable[[], float] | None = None,
) -> Starlette:
    """The API and the console over `store`, guarded as `settings` say."""
    limiter = (
        RateLimiter(settings.rate_per_minute, settings.rate_burst, rate_clock)
        if rate_clock is not None
        else RateLimiter(settings.rate_per_minute, settings.rate_burst)
    )
    authenticator = Authenticator(settings.tokens)

    async def root(_request: Request) -> Response:
        return RedirectResponse("/console/", status_code=303)

    app = Starlette(
        routes=[Route("/", root), *api_routes(), *console.routes()],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.add_middleware(
        GuardMiddleware,
        authenticator=authenticator,
        limiter=limiter,
        max_body_bytes=settings.max_body_bytes,
        html_error=console.error_page,
    )
    app.state.store = store
    app.state.clock = clock
    app.state.authenticator = authenticator
    app.state.limiter = limiter
    app.state.openapi = openapi_document()
    return app
