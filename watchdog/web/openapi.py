"""The API's OpenAPI 3.1 description, written out: it is the contract auditors' tools
read, so it is kept readable here rather than generated from docstrings."""

from __future__ import annotations

from typing import Any

from watchdog import __version__
from watchdog.history.filters import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_SORT,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    SEVERITIES,
    SORT_KEYS,
    STATES,
)
from watchdog.history.queries import SUMMARY_GROUPINGS

_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_DAY = {"type": ["string", "null"], "format": "date"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


CODE_PATTERN = "^[^\\x00-\\x1f\\x7f,]{1,128}$"  # codes and ids from the sources
NAME_PATTERN = "^[a-z][a-z0-9_]{0,31}$"  # kinds and finding codes
DATE_PATTERN = "^(19|2[0-9])[0-9]{2}-"  # filters.FIRST_DAY..LAST_DAY


def _list_param(
    name: str, description: str, enum: tuple[str, ...] = (), pattern: str = CODE_PATTERN
) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "string", "pattern": pattern}
    if enum:
        item = {"type": "string", "enum": list(enum)}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description + " Several values: repeat the parameter or separate by commas.",
        "schema": {"type": "array", "items": item},
        "style": "form",
        "explode": True,
    }


def _date_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description + " (local date in Asia/Shanghai, included; 1900-2999)",
        # The pattern states the years the filter accepts, which `format` cannot.
        "schema": {"type": "string", "format": "date", "pattern": DATE_PATTERN},
    }


FILTER_PARAMETERS = [
    _list_param("dept", "Department code."),
    _list_param("rule", "Rule id."),
    _list_param("kind", "Rule kind: overdue, procedure, fee, inspection, ...", (), NAME_PATTERN),
    _list_param(
        "finding", "Finding code: overdue, step_missing, over_standard, ...", (), NAME_PATTERN
    ),
    _list_param("severity", "Severity.", SEVERITIES),
    _list_param("state", "Violation state.", STATES),
    _list_param("source", "Source name."),
    _list_param("case", "Case id."),
    _date_param("opened_from", "Opened on or after"),
    _date_param("opened_to", "Opened on or before"),
    _date_param("resolved_from", "Resolved on or after"),
    _date_param("resolved_to", "Resolved on or before"),
]
_SORT_KEY = f"[-+]?({'|'.join(SORT_KEYS)})"
SORT_PATTERN = f"^{_SORT_KEY}(,{_SORT_KEY})*$"
SORT_PARAMETER = {
    "name": "sort",
    "in": "query",
    "required": False,
    "description": f"Comma-separated keys among {', '.join(SORT_KEYS)}; a leading '-' sorts "
    "descending. Ties are broken by id.",
    "schema": {"type": "string", "default": DEFAULT_SORT, "pattern": SORT_PATTERN},
}
PAGE_PARAMETERS = [
    {
        "name": "page",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    },
    {
        "name": "page_size",
        "in": "query",
        "required": False,
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_PAGE_SIZE,
            "default": DEFAULT_PAGE_SIZE,
        },
    },
]

_ERRORS = {
    "400": "A malformed parameter or body; the message names it.",
    "401": "No token, or a token that is not configured.",
    "413": "The request body is larger than [web] max_body_bytes.",
    "429": "Over the token's rate limit; see Retry-After.",
}


def _responses(ok: dict[str, Any], *extra: str) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    codes = {**_ERRORS, **{code: _EXTRA[code] for code in extra}}
    for code, description in sorted(codes.items()):
        responses[code] = {
            "description": description,
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return responses


_EXTRA = {
    "403": "The token's role may not do this (auditors only read).",
    "404": "No such violation or notice.",
    "409": "The notice's state does not allow this transition; the message names it.",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_VIOLATION = {
    "type": "object",
    "required": ["id", "rule", "kind", "finding", "severity", "state", "source", "evidence"],
    "properties": {
        "id": {"type": "integer"},
        "rule": _TEXT,
        "kind": _TEXT,
        "finding": _TEXT,
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "state": {"type": "string", "enum": list(STATES)},
        "source": _TEXT,
        "case_id": _NULLABLE_TEXT,
        "subject": _NULLABLE_TEXT,
        "dept_code": _NULLABLE_TEXT,
        "dept_name": _NULLABLE_TEXT,
        "matter_code": _NULLABLE_TEXT,
        "matter_name": _NULLABLE_TEXT,
        "accepted_at": _TIME,
        "completed_at": _TIME,
        "opened_at": _TIME,
        "last_seen_at": _TIME,
        "resolved_at": _TIME,
        "due_date": _DAY,
        "provisional": {"type": "boolean"},
        "evidence": {"type": "object", "description": "What the rule found, as data."},
    },
}
_EVENT = {
    "type": "object",
    "properties": {
        "event": {
            "type": "string",
            # escalated: the violation's notice went unrectified and a 督办 notice was issued;
            # contested: a source revision would have cleared or weakened it (it stays open)
            "enum": ["opened", "upgraded", "resolved", "reopened", "escalated", "contested"],
        },
        "severity_from": _NULLABLE_TEXT,
        "severity_to": _NULLABLE_TEXT,
        "at": {**_TIME, "description": "the evaluation instant"},
        "recorded_at": {**_TIME, "description": "when it was written"},
        "actor": _TEXT,
        "reason": _NULLABLE_TEXT,
        "evidence": {"type": ["object", "null"]},
    },
}
_NOTICE_EVENT = {
    "type": "object",
    "properties": {
        "event": _TEXT,
        "state_from": _NULLABLE_TEXT,
        "state_to": _NULLABLE_TEXT,
        "at": _TIME,
        "actor": _TEXT,
        "detail": _NULLABLE_TEXT,
    },
}
_DELIVERY = {
    "type": "object",
    "properties": {
        "recipient": _TEXT,
        "role": {"type": "string", "enum": ["to", "cc"]},
        "state": {"type": "string", "enum": ["pending", "sending", "sent", "failed"]},
        "attempts": {"type": "integer"},
        "created_at": _TIME,
        "delivered_at": _TIME,
        "last_error": _NULLABLE_TEXT,
        "permanent": {"type": "boolean"},
        "message_id": _NULLABLE_TEXT,
    },
}
_NOTICE = {
    "type": "object",
    "required": ["number", "state", "events", "deliveries"],
    "properties": {
        "id": {"type": "integer"},
        "number": _TEXT,
        "kind": {"type": "string", "enum": ["rectification", "escalation"]},
        "refers_to": _NULLABLE_TEXT,
        "dept_code": _TEXT,
        "dept_name": _NULLABLE_TEXT,
        "severity": _TEXT,
        "state": _TEXT,
        "subject": _TEXT,
        "issued_at": _TIME,
        "deadline": _DAY,
        "reply": _NULLABLE_TEXT,
        "escalated_at": _TIME,
        "updated_at": _TIME,
        "events": {"type": "array", "items": _ref("NoticeEvent")},
        "deliveries": {"type": "array", "items": _ref("Delivery")},
    },
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what went wrong"}},
    },
    "Violation": _VIOLATION,
    "ViolationEvent": _EVENT,
    "NoticeEvent": _NOTICE_EVENT,
    "Delivery": _DELIVERY,
    "Notice": _NOTICE,
    "ViolationPage": {
        "type": "object",
        "required": ["items", "total", "page", "page_size", "pages"],
        "properties": {
            "items": {"type": "array", "items": _ref("Violation")},
            "total": {"type": "integer"},
            "page": {"type": "integer"},
            "page_size": {"type": "integer"},
            "pages": {"type": "integer"},
        },
    },
    "ViolationDetail": {
        "allOf": [
            _ref("Violation"),
            {
                "type": "object",
                "properties": {
                    "events": {"type": "array", "items": _ref("ViolationEvent")},
                    "notices": {"type": "array", "items": _ref("Notice")},
                },
            },
        ]
    },
    "NoticeDetail": {
        "allOf": [
            _ref("Notice"),
            {
                "type": "object",
                "properties": {
                    "body_text": _TEXT,
                    "violations": {"type": "array", "items": _ref("Violation")},
                },
            },
        ]
    },
    "SummaryRow": {
        "type": "object",
        "properties": {
            "dept_code": _NULLABLE_TEXT,
            "dept_name": _NULLABLE_TEXT,
            "month": {"type": "string", "description": "YYYY-MM opened (by=dept-month)"},
            **{
                name: {"type": "integer"}
                for name in ("total", "warning", "yellow", "red", "open", "resolved")
            },
        },
    },
    "Summary": {
        "type": "object",
        "properties": {
            "by": {"type": "string", "enum": list(SUMMARY_GROUPINGS)},
            "rows": {"type": "array", "items": _ref("SummaryRow")},
        },
    },
    "TransitionRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": 2000}},
    },
    "TransitionResult": {
        "type": "object",
        "properties": {
            "number": _TEXT,
            "action": _TEXT,
            "state_from": _TEXT,
            "state": _TEXT,
            "by": _TEXT,
        },
    },
}

_ID_PARAMETER = {
    "name": "violation_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
}
_NUMBER_PARAMETER = {
    "name": "number",
    "in": "path",
    "required": True,
    "description": "notice number, e.g. JC-2026-000123",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}


def _transition(action: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"notice_{action}",
            "summary": summary + " (supervisor only; recorded with the token's name).",
            "parameters": [_NUMBER_PARAMETER],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ref("TransitionRequest")}},
            },
            "responses": _responses(
                _json(_ref("TransitionResult"), "The notice's new state."), "403", "404", "409"
            ),
        }
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "watchdog auditors' API",
            "version": __version__,
            "description": "Violation history, rectification notices and their lifecycle. "
            "Every request needs `Authorization: Bearer <token>`; errors are "
            '`{"error": "..."}`.',
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/violations": {
                "get": {
                    "operationId": "list_violations",
                    "summary": "A page of the violations matching the filters.",
                    "parameters": [*FILTER_PARAMETERS, SORT_PARAMETER, *PAGE_PARAMETERS],
                    "responses": _responses(_json(_ref("ViolationPage"), "One page.")),
                }
            },
            "/api/v1/violations/export": {
                "get": {
                    "operationId": "export_violations",
                    "summary": "Every violation matching the filters, streamed as CSV "
                    "(UTF-8 with BOM, for Excel) or JSON lines.",
                    "parameters": [
                        *FILTER_PARAMETERS,
                        SORT_PARAMETER,
                        {
                            "name": "format",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "string",
                                "enum": ["csv", "jsonl"],
                                "default": "csv",
                            },
                        },
                    ],
                    "responses": _responses(
                        {
                            "description": "The export.",
                            "content": {
                                "text/csv": {"schema": {"type": "string"}},
                                "application/x-ndjson": {"schema": {"type": "string"}},
                            },
                        }
                    ),
                }
            },
            "/api/v1/violations/{violation_id}": {
                "get": {
                    "operationId": "show_violation",
                    "summary": "One violation: evidence, every event, its notices with their "
                    "events and deliveries.",
                    "parameters": [_ID_PARAMETER],
                    "responses": _responses(
                        _json(_ref("ViolationDetail"), "The violation."), "404"
                    ),
                }
            },
            "/api/v1/summary": {
                "get": {
                    "operationId": "summary",
                    "summary": "Violation counts by department (and month opened).",
                    "parameters": [
                        *FILTER_PARAMETERS,
                        {
                            "name": "by",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "string",
                                "enum": list(SUMMARY_GROUPINGS),
                                "default": "dept-month",
                            },
                        },
                    ],
                    "responses": _responses(_json(_ref("Summary"), "The counts.")),
                }
            },
            "/api/v1/notices/{number}": {
                "get": {
                    "operationId": "show_notice",
                    "summary": "A notice as sent, its events, deliveries and violations.",
                    "parameters": [_NUMBER_PARAMETER],
                    "responses": _responses(_json(_ref("NoticeDetail"), "The notice."), "404"),
                }
            },
            "/api/v1/notices/{number}/ack": _transition("ack", "Acknowledge a notice"),
            "/api/v1/notices/{number}/close": _transition("close", "Close a rectified notice"),
            "/api/v1/notices/{number}/reopen": _transition(
                "reopen", "Reopen a rectified or closed notice (optional reason)"
            ),
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This description.",
                    "responses": _responses({"description": "OpenAPI 3.1 document."}),
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
    }
