"""A violation's evidence in plain Chinese sentences, as a notice states it.

The rules keep their evidence as data (dates, limits, step records, catalogue entries);
a department reading a notice needs sentences it can check against its own files. Each
finding code has one sentence builder here; an unknown code (a new rule kind, a pattern
rule) gets a generic sentence built from its evidence, never nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

SEVERITY_LABELS = {"warning": "预警", "yellow": "黄牌", "red": "红牌"}

FINDING_LABELS = {
    "overdue": "办件超期",
    "step_missing": "缺少必经办理环节",
    "out_of_order": "办理环节顺序颠倒",
    "before_acceptance": "受理前即办理审批环节",
    "same_handler": "应由不同人员办理的环节由同一人办理",
    "not_in_catalogue": "收取目录清单外费用",
    "not_in_force": "收取已失效或未生效的收费项目",
    "over_standard": "超标准收费",
    "not_applicable": "收费项目不适用于本事项",
    "above_minimum": "未按收费标准下限收费",
    "repeat": "涉企重复检查",
}

STEP_NAMES = {
    "accept": "受理",
    "review": "承办（初审）",
    "verify": "审核（复审）",
    "decide": "批准（决定）",
    "complete": "办结",
    "deliver": "送达",
    "site_inspection": "现场勘验",
    "supplement_notice": "补正告知",
}

PAUSE_NAMES = {
    "hearing": "听证",
    "expert_review": "专家评审",
    "testing": "检验检测",
    "site_survey": "现场勘查",
    "supplement": "补齐补正",
    "other": "其他特别程序",
}

STATE_LABELS = {
    "issued": "已发出",
    "delivered": "已送达",
    "acknowledged": "已签收",
    "rectified": "已整改",
    "closed": "已办结",
    "escalated": "已督办",
}

Sentences = list[str]


def finding_label(finding: str, rule_title: str) -> str:
    return FINDING_LABELS.get(finding, rule_title)


def matter_text(evidence: Mapping[str, Any]) -> str | None:
    """`食品经营许可证核发（SC001）`, or None for a violation without a matter."""
    name, code = evidence.get("matter_name"), evidence.get("matter_code")
    if name and code:
        return f"{name}（{code}）"
    return name or code or None


def describe(
    kind: str, finding: str, evidence: Mapping[str, Any], rule_title: str, zone: ZoneInfo
) -> Sentences:
    """The evidence of one violation as sentences (at least one)."""
    builder = _BUILDERS.get(finding)
    if builder is None:
        return _generic(evidence, rule_title)
    try:
        return builder(evidence, zone)
    except (KeyError, TypeError, ValueError):
        # Evidence written by an older version of a rule: say what there is rather than
        # fail the notice (the violation's full evidence stays in the store).
        return _generic(evidence, rule_title)


def _unit(evidence: Mapping[str, Any]) -> str:
    return "个自然日" if evidence.get("unit") == "N" else "个工作日"


def _overdue(evidence: Mapping[str, Any], _zone: ZoneInfo) -> Sentences:
    unit = _unit(evidence)
    limit = evidence["promised_limit"]
    first = f"该件受理于 {evidence['accepted_on']}，承诺时限 {limit} {unit}"
    if limit == 0:
        first += "（即办件）"
    if evidence.get("extension_days"):
        first += f"，经批准延长 {evidence['extension_days']} {unit}"
    first += f"，应办结日期 {evidence['due_date']}。"
    lines = [first]
    if evidence.get("statutory_limit") is not None and evidence.get("statutory_due_date"):
        lines.append(
            f"法定时限 {evidence['statutory_limit']} {unit}，"
            f"法定办结日期 {evidence['statutory_due_date']}。"
        )
    for pause in evidence.get("pauses") or ():
        if pause.get("kind") == "extension":
            continue
        name = PAUSE_NAMES.get(pause.get("kind", ""), "特别程序")
        end = pause.get("end") or "今"
        lines.append(f"{name}期间 {pause['start']} 至 {end} 不计入办理时限。")
    late = evidence.get("days_late")
    if evidence.get("completed_on"):
        lines.append(f"该件办结于 {evidence['completed_on']}，超期 {late or 0} {unit}。")
    elif late is not None:
        lines.append(f"截至 {evidence['evaluated_on']} 尚未办结，已超期 {late} {unit}。")
    else:
        remaining = evidence.get("remaining_days")
        lines.append(
            f"截至 {evidence['evaluated_on']} 尚未办结，距应办结日期还剩 {remaining} {unit}。"
        )
    if evidence.get("provisional"):
        lines.append("（应办结日期超出已公布节假日安排的年份，以上期限为暂定，以正式安排为准。）")
    return lines


def _local(text: str, zone: ZoneInfo) -> str:
    """An ISO instant from the evidence as local `YYYY-MM-DD HH:MM`."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone)
    return moment.strftime("%Y-%m-%d %H:%M")


def _step(code: str) -> str:
    return f"“{STEP_NAMES.get(code, code)}”"


def _step_at(step: Mapping[str, Any], zone: ZoneInfo) -> str:
    return f"{_step(step['step_code'])}环节（{_local(step['finished_at'], zone)} 办理完毕）"


def _step_missing(evidence: Mapping[str, Any], zone: ZoneInfo) -> Sentences:
    later = "、".join(_step_at(s, zone) for s in evidence["later_steps"])
    return [
        f"按办理流程应经过{_step(evidence['missing_step'])}环节，但该件缺少此环节，"
        f"而其后的{later}已办理。"
    ]


def _out_of_order(evidence: Mapping[str, Any], zone: ZoneInfo) -> Sentences:
    earlier = "、".join(_step_at(s, zone) for s in evidence["finished_before"])
    return [
        f"{_step_at(evidence['step'], zone)}早于按流程应在其之前完成的{earlier}，办理顺序颠倒。"
    ]


def _before_acceptance(evidence: Mapping[str, Any], zone: ZoneInfo) -> Sentences:
    return [
        f"{_step_at(evidence['step'], zone)}早于受理时间 "
        f"{_local(evidence['accepted_at'], zone)}，属于受理前即办理审批环节。"
    ]


def _same_handler(evidence: Mapping[str, Any], zone: ZoneInfo) -> Sentences:
    steps = "与".join(_step_at(s, zone) for s in evidence["steps"])
    return [f"{steps}应由不同人员办理，但均由 {evidence['handler_id']} 办理。"]


def _fee(evidence: Mapping[str, Any]) -> str:
    name = evidence.get("fee_name") or "收费项目"
    return (
        f"该件于 {evidence['charged_on']} 收取“{name}”（收费项目编码 {evidence['fee_code']}）"
        f"{evidence['amount']} 元"
    )


def _not_in_catalogue(evidence: Mapping[str, Any], _zone: ZoneInfo) -> Sentences:
    return [f"{_fee(evidence)}，该项目不在行政事业性收费目录清单内。"]


def _not_in_force(evidence: Mapping[str, Any], _zone: ZoneInfo) -> Sentences:
    spans = "、".join(
        f"{e['valid_from']} 至 {e['valid_to'] or '今'}" for e in evidence["catalogue_entries"]
    )
    return [f"{_fee(evidence)}，收费当日该项目不在有效期内（目录清单所列有效期：{spans}）。"]


def _over_standard(evidence: Mapping[str, Any], _zone: ZoneInfo) -> Sentences:
    entry = evidence["catalogue_entry"]
    return [f"{_fee(evidence)}，超过目录清单规定的收费标准上限 {entry['max_amount']} 元。"]


def _not_applicable(evidence: Mapping[str, Any], _zone: ZoneInfo) -> Sentences:
    entry = evidence["catalogue_entry"]
    matters = "、".join(entry["matters"])
    return [
        f"{_fee(evidence)}，目录清单规定该项目仅适用于事项 {matters}，"
        f"不适用于本事项（{evidence.get('matter_code') or '未知'}）。"
    ]


def _above_minimum(evidence: Mapping[str, Any], _zone: ZoneInfo) -> Sentences:
    entry = evidence["catalogue_entry"]
    return [f"{_fee(evidence)}，高于按规定应执行的收费标准下限 {entry['min_amount']} 元。"]


def _repeat(evidence: Mapping[str, Any], _zone: ZoneInfo) -> Sentences:
    target = evidence.get("target_name") or evidence["target_id"]
    ids = "、".join(evidence["inspection_ids"])
    lines = [
        f"{evidence['date']} 对企业“{target}”（统一社会信用代码 {evidence['target_id']}）"
        f"开展检查（检查编号 {ids}）。"
    ]
    if "window" in evidence.get("reasons", ()):
        earlier = "；".join(
            f"{u['date']} 由部门 {u['dept_code']} 检查（编号 {u['inspection_id']}）"
            for u in evidence["earlier_in_window"]
        )
        lines.append(
            f"此前 {evidence['window_days']} 日内已对该企业检查：{earlier}。"
            f"同一企业 {evidence['window_days']} 日内检查不得超过 "
            f"{evidence['max_in_window']} 次（联合检查计为一次），本次为第 "
            f"{evidence['units_in_window']} 次。"
        )
    if "yearly_cap" in evidence.get("reasons", ()):
        lines.append(
            f"本部门 {evidence['year']} 年度对该企业的检查已达上限 {evidence['yearly_cap']} 次，"
            f"本次为第 {evidence['units_in_year']} 次。"
        )
    return lines


def _generic(evidence: Mapping[str, Any], rule_title: str) -> Sentences:
    for key in ("description", "summary", "message"):
        text = evidence.get(key)
        if isinstance(text, str) and text.strip():
            return [text.strip()]
    facts = "；".join(
        f"{key}：{value}"
        for key, value in evidence.items()
        if isinstance(value, str | int | float) and key not in {"dept_name"}
    )
    sentence = f"经电子监察系统比对，该件触发规则“{rule_title}”。"
    return [sentence + (f"相关数据：{facts}。" if facts else "")]


_BUILDERS: dict[str, Callable[[Mapping[str, Any], ZoneInfo], Sentences]] = {
    "overdue": _overdue,
    "step_missing": _step_missing,
    "out_of_order": _out_of_order,
    "before_acceptance": _before_acceptance,
    "same_handler": _same_handler,
    "not_in_catalogue": _not_in_catalogue,
    "not_in_force": _not_in_force,
    "over_standard": _over_standard,
    "not_applicable": _not_applicable,
    "above_minimum": _above_minimum,
    "repeat": _repeat,
}
