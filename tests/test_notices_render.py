"""Notice templates: every finding kind renders in Chinese with its deadline; an edited
template that names a missing variable stops the start with the file and the name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from watchdog.notices.render import (
    SHIPPED_TEMPLATES,
    NoticeContext,
    NoticeRenderer,
    NoticeView,
    sample_contexts,
)
from watchdog.notices.samples import SAMPLE_ITEMS, SAMPLES
from watchdog.notices.settings import NoticeSettings
from watchdog.tomlreader import ConfigError

# A plain sentence of each sample's evidence, in the order of watchdog/notices/samples.py.
EXPECTED = {
    "overdue": "该件受理于 2026-03-02，承诺时限 5 个工作日，经批准延长 2 个工作日，"
    "应办结日期 2026-03-13。",
    "overdue completed": "该件办结于 2026-03-03，超期 18 个自然日。",
    "step_missing": "按办理流程应经过“承办（初审）”环节，但该件缺少此环节",
    "out_of_order": "早于按流程应在其之前完成的“承办（初审）”环节（2026-03-04 10:00 办理完毕），"
    "办理顺序颠倒",
    "before_acceptance": "早于受理时间 2026-03-02 10:00，属于受理前即办理审批环节",
    "same_handler": "应由不同人员办理，但均由 W001 办理",
    "not_in_catalogue": "收取“工本费”（收费项目编码 F0101）120.00 元，"
    "该项目不在行政事业性收费目录清单内",
    "not_in_force": "收费当日该项目不在有效期内（目录清单所列有效期：2020-01-01 至 2025-12-31）",
    "over_standard": "超过目录清单规定的收费标准上限 80.00 元",
    "not_applicable": "仅适用于事项 JS001，不适用于本事项（SC001）",
    "above_minimum": "高于按规定应执行的收费标准下限 20.00 元",
    "repeat": "此前 30 日内已对该企业检查：2026-02-20 由部门 371331006 检查（编号 J0001）",
    "supplement_twice": "该件触发规则“多次要求补正材料”",
}


def test_every_template_renders_every_finding_kind_in_chinese_with_the_deadline() -> None:
    renderer = NoticeRenderer()
    keys = ["overdue", "overdue completed"] + [finding for _, finding, *_ in SAMPLES[2:]]
    assert keys == list(EXPECTED)
    for key, item in zip(keys, SAMPLE_ITEMS, strict=True):
        notice = NoticeView(
            number="JC-2026-000042",
            kind="rectification",
            title="整改通知书",
            severity=item.severity,
            severity_label=item.severity_label,
            dept_code="371331001",
            dept_name="东阳县市场监督管理局",
            issued_on="2026-09-16",
            deadline="2026-09-30",
            deadline_days=10,
            digest=False,
            refers_to_number=None,
        )
        rendered = renderer.render(NoticeContext(notice, (item,), None, None, "请回复。"))
        assert rendered.subject.startswith("整改通知书 JC-2026-000042：东阳县市场监督管理局")
        assert item.finding_label in rendered.subject
        assert "\n" not in rendered.subject
        for body in (rendered.text, rendered.html):
            assert EXPECTED[key] in body, (key, body)
            assert "请于 2026-09-30（含当日）前完成整改" in body
            assert "自本通知书发出之日起 10 个工作日内" in body
            assert item.basis in body and item.rule_title in body
            assert "编号：JC-2026-000042" in body or "JC-2026-000042" in body
        assert rendered.html.startswith("<!DOCTYPE html>")


def test_the_html_body_escapes_what_the_source_data_says() -> None:
    renderer = NoticeRenderer()
    _, context = sample_contexts()[0]
    item = replace(context.items[0], matter="<script>alert(1)</script>")
    rendered = renderer.render(replace(context, items=(item,)))
    assert "&lt;script&gt;" in rendered.html and "<script>" not in rendered.html
    assert "<script>alert(1)</script>" in rendered.text  # plain text stays as it is


def test_an_escalation_names_the_original_notice_and_its_deadline() -> None:
    renderer = NoticeRenderer()
    _, context = sample_contexts()[-1]
    rendered = renderer.render(context)
    assert rendered.subject.startswith("【督办】督办通知书 JC-2026-000009")
    assert "发出整改通知书（编号 JC-2026-000001），要求于 2026-03-31（含当日）前" in rendered.text


def test_a_template_naming_a_missing_variable_is_an_error_at_start(tmp_path: Path) -> None:
    shipped = (SHIPPED_TEMPLATES / "body.txt.j2").read_text("utf-8")
    (tmp_path / "body.txt.j2").write_text(
        shipped.replace("{{ item.rule_title }}", "{{ item.rule_name }}"), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as error:
        NoticeRenderer(tmp_path).check()
    first = error.value.problems[0]
    assert first.startswith(f"{tmp_path / 'body.txt.j2'}: notices.templates: ")
    assert "has no attribute 'rule_name'" in first
    assert "(rendering a sample overdue notice)" in first


def test_a_variable_missing_only_for_escalations_is_found_by_the_check_too(tmp_path: Path) -> None:
    (tmp_path / "subject.txt.j2").write_text(
        "{% if original %}{{ original.deadline_days }}{% endif %}{{ notice.number }}",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        NoticeRenderer(tmp_path).check()
    (problem,) = error.value.problems
    assert "subject.txt.j2" in problem and "deadline_days" in problem
    assert "(rendering a sample escalation notice)" in problem


def test_a_template_with_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "body.html.j2").write_text("<p>\n{% if notice.digest %}\n</p>", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        NoticeRenderer(tmp_path)
    (problem,) = error.value.problems
    assert problem.startswith(f"{tmp_path / 'body.html.j2'}: notices.templates: line 3: ")


def test_files_in_the_configured_folder_win_over_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "subject.txt.j2").write_text(
        "监察提醒 {{ notice.number }} {{ notice.dept_name }}", encoding="utf-8"
    )
    renderer = NoticeRenderer(tmp_path)
    renderer.check()
    _, context = sample_contexts()[0]
    rendered = renderer.render(context)
    assert rendered.subject == "监察提醒 JC-2026-000001 东阳县市场监督管理局"
    assert "整改期限" in rendered.text  # the other templates are still the shipped ones


def test_the_shipped_reply_instructions_say_how_to_reply() -> None:
    settings = NoticeSettings()
    assert "回复本通知书" in settings.reply_instructions
