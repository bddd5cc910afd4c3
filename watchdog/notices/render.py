"""Notice content: Jinja2 templates (shipped in Chinese, overridable) → subject, text, HTML.

Templates are `subject.txt.j2`, `body.txt.j2` and `body.html.j2`. A file of the same
name in the configured folder (`[notices] templates`) wins over the shipped one. The
environment is strict (`StrictUndefined`): a variable a template names but the context
lacks is an error, never a blank in a sent mail. `NoticeRenderer.check` renders every
template against a sample of every finding kind at start, so such a mistake in an
edited template stops the daemon with the file and the variable named, before any
notice is issued with it.

What a template sees:

- `notice`: `NoticeView` — number, kind (`rectification` | `escalation`), title,
  severity, severity_label, dept_code, dept_name, issued_on, deadline, deadline_days,
  digest, refers_to_number, deadline_provisional;
- `items`: `NoticeItem`s, one per violation — case_id, matter, rule_title, basis,
  finding, finding_label, severity_label, subject, evidence (sentences), earlier_number;
- `original`: for an escalation, the `OriginalView` of the notice escalated, else None;
- `recipients_note`: the line saying a department has no contacts, else None;
- `reply_instructions`: how to reply (from the settings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    select_autoescape,
)

from watchdog.tomlreader import ConfigError

TEMPLATE_NAMES = ("subject.txt.j2", "body.txt.j2", "body.html.j2")
SHIPPED_TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class NoticeItem:
    """One violation as a notice states it."""

    violation_id: int
    case_id: str | None
    matter: str | None
    rule_id: str
    rule_title: str
    basis: str
    finding: str
    finding_label: str
    severity: str
    severity_label: str
    subject: str | None
    evidence: tuple[str, ...]
    earlier_number: str | None  # the notice this upgrade follows, if any


@dataclass(frozen=True)
class NoticeView:
    number: str
    kind: str  # rectification | escalation
    title: str  # 整改通知书 | 督办通知书
    severity: str
    severity_label: str
    dept_code: str
    dept_name: str
    issued_on: str
    deadline: str | None
    deadline_days: int | None
    digest: bool
    refers_to_number: str | None
    # The deadline falls in a year without a published holiday schedule (counted
    # Monday to Friday): the notice says it is provisional.
    deadline_provisional: bool = False


@dataclass(frozen=True)
class OriginalView:
    """The notice an escalation is about."""

    number: str
    issued_on: str
    deadline: str
    state_label: str


@dataclass(frozen=True)
class NoticeContext:
    notice: NoticeView
    items: tuple[NoticeItem, ...]
    original: OriginalView | None
    recipients_note: str | None
    reply_instructions: str


@dataclass(frozen=True)
class RenderedNotice:
    subject: str
    text: str
    html: str


class NoticeRenderer:
    """The three templates, loaded once; `render` fills them for one notice."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders = [FileSystemLoader(override_dir)] if override_dir is not None else []
        loaders.append(FileSystemLoader(SHIPPED_TEMPLATES))
        self.environment = Environment(
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        problems: list[str] = []
        self.templates: dict[str, Template] = {}
        for name in TEMPLATE_NAMES:
            try:
                self.templates[name] = self.environment.get_template(name)
            except TemplateSyntaxError as exc:
                problems.append(
                    f"{exc.filename or name}: notices.templates: line {exc.lineno}: {exc.message}"
                )
        if problems:
            raise ConfigError(problems)

    def render(self, context: NoticeContext) -> RenderedNotice:
        values = {
            "notice": context.notice,
            "items": context.items,
            "original": context.original,
            "recipients_note": context.recipients_note,
            "reply_instructions": context.reply_instructions,
        }
        subject = self.templates["subject.txt.j2"].render(values)
        return RenderedNotice(
            subject=" ".join(subject.split()),
            text=self.templates["body.txt.j2"].render(values),
            html=self.templates["body.html.j2"].render(values),
        )

    def check(self, samples: Sequence[tuple[str, NoticeContext]] | None = None) -> None:
        """Render every template against every sample; raise ConfigError naming the
        template file, the sample and the missing variable for each failure."""
        problems: list[str] = []
        for label, context in samples if samples is not None else sample_contexts():
            for name, template in self.templates.items():
                try:
                    template.render(
                        notice=context.notice,
                        items=context.items,
                        original=context.original,
                        recipients_note=context.recipients_note,
                        reply_instructions=context.reply_instructions,
                    )
                except TemplateError as exc:
                    where = template.filename or name
                    problem = f"{where}: notices.templates: {exc.message} (rendering {label})"
                    if problem not in problems:
                        problems.append(problem)
                except Exception as exc:  # a filter or test misused on some value
                    where = template.filename or name
                    problems.append(
                        f"{where}: notices.templates: {type(exc).__name__}: {exc} "
                        f"(rendering {label})"
                    )
            if len(problems) > 20:
                break
        if problems:
            raise ConfigError(problems)


def sample_contexts() -> list[tuple[str, NoticeContext]]:
    """One notice per sample finding, a digest of all, an escalation, and a department
    without contacts: what `check` renders every template against."""
    from watchdog.notices.samples import SAMPLE_ITEMS

    notice = NoticeView(
        number="JC-2026-000001",
        kind="rectification",
        title="整改通知书",
        severity="yellow",
        severity_label="黄牌",
        dept_code="371331001",
        dept_name="东阳县市场监督管理局",
        issued_on="2026-03-17",
        deadline="2026-03-31",
        deadline_days=10,
        digest=False,
        refers_to_number=None,
    )
    reply = "请于整改期限内回复。"
    contexts = [
        (
            f"a sample {item.finding} notice",
            NoticeContext(
                replace(notice, severity=item.severity, severity_label=item.severity_label),
                (item,),
                None,
                None,
                reply,
            ),
        )
        for item in SAMPLE_ITEMS
    ]
    upgrade = replace(SAMPLE_ITEMS[0], severity="red", earlier_number="JC-2026-000001")
    contexts.append(
        (
            "a sample upgrade notice",
            NoticeContext(
                replace(notice, severity="red", refers_to_number="JC-2026-000001"),
                (upgrade,),
                None,
                None,
                reply,
            ),
        )
    )
    contexts.append(
        (
            "a sample daily digest without department contacts",
            NoticeContext(
                replace(notice, digest=True, severity="red", deadline_provisional=True),
                SAMPLE_ITEMS,
                None,
                "本部门未登记联系人，本通知书送监察机关转交。",
                reply,
            ),
        )
    )
    contexts.append(
        (
            "a sample escalation notice",
            NoticeContext(
                replace(
                    notice,
                    number="JC-2026-000009",
                    kind="escalation",
                    title="督办通知书",
                    deadline=None,
                    deadline_days=None,
                    refers_to_number="JC-2026-000001",
                ),
                SAMPLE_ITEMS[:2],
                OriginalView("JC-2026-000001", "2026-03-17", "2026-03-31", "已送达"),
                None,
                reply,
            ),
        )
    )
    return contexts
