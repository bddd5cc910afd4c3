"""A sample violation of every finding kind, shaped as the rules write their evidence.

Used to check the notice templates at start (every template must render every kind)
and by the tests. The evidence mirrors `engine/overdue.py`, `engine/procedure.py`,
`engine/fees.py` and `engine/inspections.py`; a pattern rule's evidence is free-form.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from watchdog.notices.render import NoticeItem
from watchdog.notices.wording import SEVERITY_LABELS, describe, finding_label, matter_text

_STEP = {"step_id": "S2", "handler_id": "W001"}
_BASE_PROCEDURE = {
    "matter_code": "SC001",
    "matter_name": "食品经营许可证核发",
    "dept_name": "东阳县市场监督管理局",
    "template": "general",
    "template_steps": ["accept", "review", "decide", "complete"],
    "accepted_at": "2026-03-02T02:00:00+00:00",
    "as_of": "2026-03-16T10:00:00+00:00",
}
_FEE = {
    "matter_code": "SC001",
    "matter_name": "食品经营许可证核发",
    "dept_name": "东阳县市场监督管理局",
    "fee_code": "F0101",
    "fee_name": "工本费",
    "amount": "120.00",
    "charged_on": "2026-03-05",
}
_CATALOGUE_ENTRY = {
    "code": "F0101",
    "name": "工本费",
    "max_amount": "80.00",
    "min_amount": "20.00",
    "valid_from": "2020-01-01",
    "valid_to": None,
    "matters": ["JS001"],
    "charge_at_minimum": True,
}

# (kind, finding, severity, rule title, evidence)
SAMPLES: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    (
        "overdue",
        "overdue",
        "yellow",
        "办件超期",
        {
            "matter_code": "SC001",
            "matter_name": "食品经营许可证核发",
            "dept_name": "东阳县市场监督管理局",
            "accepted_on": "2026-03-02",
            "unit": "W",
            "promised_limit": 5,
            "statutory_limit": 20,
            "extension_days": 2,
            "pauses": [
                {"kind": "extension", "start": "2026-03-04", "end": None, "granted_days": 2},
                {
                    "kind": "hearing",
                    "start": "2026-03-05",
                    "end": "2026-03-06",
                    "granted_days": None,
                },
            ],
            "due_date": "2026-03-13",
            "statutory_due_date": "2026-04-02",
            "red_due_date": "2026-04-02",
            "completed_on": None,
            "evaluated_on": "2026-03-17",
            "counted_days": 9,
            "days_late": 2,
            "remaining_days": None,
            "provisional": False,
            "calendar_coverage_end": "2026-12-31",
        },
    ),
    (
        "overdue",
        "overdue",
        "red",
        "办件超期",
        {
            "matter_code": "JS002",
            "matter_name": "建筑工程施工许可",
            "dept_name": "东阳县住房和城乡建设局",
            "accepted_on": "2026-02-10",
            "unit": "N",
            "promised_limit": 3,
            "statutory_limit": None,
            "extension_days": 0,
            "pauses": [],
            "due_date": "2026-02-13",
            "statutory_due_date": None,
            "red_due_date": "2026-02-18",
            "completed_on": "2026-03-03",
            "evaluated_on": "2026-03-17",
            "counted_days": 21,
            "days_late": 18,
            "remaining_days": None,
            "provisional": True,
            "calendar_coverage_end": "2026-12-31",
        },
    ),
    (
        "procedure",
        "step_missing",
        "red",
        "违反审批程序",
        {
            **_BASE_PROCEDURE,
            "missing_step": "review",
            "later_steps": [
                {**_STEP, "step_code": "decide", "finished_at": "2026-03-03T02:00:00+00:00"}
            ],
        },
    ),
    (
        "procedure",
        "out_of_order",
        "yellow",
        "违反审批程序",
        {
            **_BASE_PROCEDURE,
            "step": {**_STEP, "step_code": "decide", "finished_at": "2026-03-03T02:00:00+00:00"},
            "finished_before": [
                {**_STEP, "step_code": "review", "finished_at": "2026-03-04T02:00:00+00:00"}
            ],
        },
    ),
    (
        "procedure",
        "before_acceptance",
        "yellow",
        "违反审批程序",
        {
            **_BASE_PROCEDURE,
            "step": {**_STEP, "step_code": "review", "finished_at": "2026-03-01T02:00:00+00:00"},
        },
    ),
    (
        "procedure",
        "same_handler",
        "red",
        "违反审批程序",
        {
            **_BASE_PROCEDURE,
            "handler_id": "W001",
            "steps": [
                {**_STEP, "step_code": "review", "finished_at": "2026-03-03T02:00:00+00:00"},
                {**_STEP, "step_code": "decide", "finished_at": "2026-03-04T02:00:00+00:00"},
            ],
        },
    ),
    ("fee", "not_in_catalogue", "red", "目录外收费", dict(_FEE)),
    (
        "fee",
        "not_in_force",
        "red",
        "目录外收费",
        {**_FEE, "catalogue_entries": [{**_CATALOGUE_ENTRY, "valid_to": "2025-12-31"}]},
    ),
    (
        "fee",
        "over_standard",
        "red",
        "目录外收费",
        {**_FEE, "catalogue_entry": _CATALOGUE_ENTRY},
    ),
    (
        "fee",
        "not_applicable",
        "yellow",
        "目录外收费",
        {**_FEE, "catalogue_entry": _CATALOGUE_ENTRY},
    ),
    (
        "fee",
        "above_minimum",
        "warning",
        "目录外收费",
        {**_FEE, "amount": "50.00", "catalogue_entry": _CATALOGUE_ENTRY},
    ),
    (
        "inspection",
        "repeat",
        "yellow",
        "涉企重复检查",
        {
            "dept_name": "东阳县市场监督管理局",
            "target_id": "91371331MA3C000001",
            "target_name": "东阳县某某食品有限公司",
            "date": "2026-03-10",
            "dept_code": "371331001",
            "inspection_ids": ["J0002"],
            "reasons": ["window", "yearly_cap"],
            "window_days": 30,
            "max_in_window": 1,
            "window_start": "2026-02-08",
            "units_in_window": 2,
            "earlier_in_window": [
                {
                    "inspection_id": "J0001",
                    "date": "2026-02-20",
                    "dept_code": "371331006",
                    "inspection_ids": ["J0001"],
                }
            ],
            "yearly_cap": 1,
            "year": 2026,
            "units_in_year": 2,
            "allowed_in_year": [],
        },
    ),
    (
        "pattern",
        "supplement_twice",
        "yellow",
        "多次要求补正材料",
        {"matter_name": "食品经营许可证核发", "supplement_notices": 2, "first": "2026-03-03"},
    ),
)


def _item(index: int, sample: tuple[str, str, str, str, dict[str, Any]]) -> NoticeItem:
    kind, finding, severity, title, evidence = sample
    zone = ZoneInfo("Asia/Shanghai")
    return NoticeItem(
        violation_id=index + 1,
        case_id=None if kind == "inspection" else f"3713310012026{index:06d}",
        matter=matter_text(evidence),
        rule_id=kind,
        rule_title=title,
        basis="《中华人民共和国行政许可法》第四十二条",
        finding=finding,
        finding_label=finding_label(finding, title),
        severity=severity,
        severity_label=SEVERITY_LABELS[severity],
        subject="J0002" if kind == "inspection" else None,
        evidence=tuple(describe(kind, finding, evidence, title, zone)),
        earlier_number=None,
    )


SAMPLE_ITEMS: tuple[NoticeItem, ...] = tuple(_item(i, s) for i, s in enumerate(SAMPLES))
