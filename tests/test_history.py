"""Violation history: each filter, sorting and paging, one violation in full, the
summary, exports that round-trip, and the `watchdog violations …` commands.

The store is filled through the real recording path: hand-made findings reconciled at
chosen instants (Asia/Shanghai), with the notice issuer as the violation listener and
the outbox delivering through the file sender.

    F5  procedure/same_handler  city C4    ZJJ    red      opened 3/31
    F1  overdue                 county C1  SCJGJ  warning 4/10 → yellow 4/15, open
    F2  overdue                 county C2  ZJJ    yellow   opened 5/6, resolved 6/2
    F3  fee/over_standard       county C3  SCJGJ  red      opened 6/30 23:30 (Q2, June)
    F4  inspection/repeat       county —   WJJ    yellow   opened 7/1 00:30 (UTC: 6/30)
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select

from watchdog.calendar import WorkCalendar
from watchdog.cli import main
from watchdog.clock import Severity
from watchdog.engine.findings import Finding
from watchdog.engine.rulefiles import load_rules
from watchdog.history import export, queries
from watchdog.history.filters import (
    SORT_KEYS,
    FilterError,
    Page,
    Sort,
    ViolationFilter,
    parse_query,
)
from watchdog.notices.delivery import Outbox
from watchdog.notices.issuing import NoticeIssuer
from watchdog.notices.mail_settings import MailSettings
from watchdog.notices.senders import FileSender
from watchdog.notices.settings import NoticeSettings
from watchdog.store import schema
from watchdog.store.database import create_store_engine, upgrade_store
from watchdog.violations import Scope, reconcile

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = Path(__file__).resolve().parent.parent / "rules"
SCJGJ_NAME = "东阳县市场监督管理局"
ZJJ_NAME = "东阳县住房和城乡建设局"
MATTER = "食品经营许可证核发"
# Text that breaks naive CSV handling: a comma, quotes, a newline and Chinese.
DEPT_NAMES = {"SCJGJ": SCJGJ_NAME, "ZJJ": ZJJ_NAME}
NOTE = '超期未办结，"申请人"多次催办\n第二行说明'


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def finding(
    label: str,
    rule: str,
    kind: str,
    code: str,
    case_id: str | None,
    dept: str,
    severity: Severity,
    *,
    source: str = "county",
    subject: str | None = None,
    target: str | None = None,
) -> Finding:
    return Finding(
        rule_id=rule,
        kind=kind,
        finding=code,
        source=source,
        case_id=case_id,
        subject=subject,
        dept_code=dept,
        severity=severity,
        due_date=date(2026, 4, 3) if kind == "overdue" else None,
        provisional=False,
        evidence={
            "label": label,
            "dept_name": DEPT_NAMES.get(dept),
            "matter_name": MATTER,
            "note": NOTE,
            "days_late": 4,
        },
        target_id=target,
    )


F1 = ("F1", "overdue", "overdue", "overdue", "C1", "SCJGJ")
F2 = ("F2", "overdue", "overdue", "overdue", "C2", "ZJJ")


def _cases(store: Engine) -> None:
    rows = [
        ("county", "C1", "SCJGJ", SCJGJ_NAME),
        ("county", "C2", "ZJJ", ZJJ_NAME),
        ("county", "C3", "SCJGJ", SCJGJ_NAME),
        ("city", "C4", "ZJJ", ZJJ_NAME),
    ]
    with store.begin() as connection:
        connection.execute(
            insert(schema.cases),
            [
                {
                    "source": source,
                    "case_id": case_id,
                    "matter_code": "SC001",
                    "matter_name": MATTER,
                    "dept_code": dept,
                    "dept_name": name,
                    "accepted_at": local("2026-03-02T10:00:00"),
                    "promised_limit": 5,
                    "limit_unit": "W",
                    "updated_at": local("2026-03-02T10:00:00"),
                    "change_seq": 1,
                }
                for source, case_id, dept, name in rows
            ],
        )


def fill_history(store: Engine, outbox: Path) -> dict[str, int]:
    """Record the five violations of the module docstring; their ids by label."""
    _cases(store)
    issuer = NoticeIssuer(
        NoticeSettings(
            enabled=True,
            contacts={"SCJGJ": ("scj@example.gov.cn",)},
            supervision_office=("jianchake@example.gov.cn",),
        ),
        WorkCalendar(),
        lambda: load_rules(RULES),
    )
    steps: list[tuple[str, Scope, list[Finding], dict[str, str]]] = [
        (
            "2026-03-31T10:00:00",
            Scope("procedure", "city", ["C4"]),
            [
                finding(
                    "F5",
                    "procedure",
                    "procedure",
                    "same_handler",
                    "C4",
                    "ZJJ",
                    Severity.RED,
                    source="city",
                    subject="review,decide",
                )
            ],
            {},
        ),
        (
            "2026-04-10T09:00:00",
            Scope("overdue", "county", ["C1"]),
            [finding(*F1, Severity.WARNING)],
            {},
        ),
        (
            "2026-04-15T09:00:00",
            Scope("overdue", "county", ["C1"]),
            [finding(*F1, Severity.YELLOW)],
            {},
        ),
        (
            "2026-05-06T09:00:00",
            Scope("overdue", "county", ["C2"]),
            [finding(*F2, Severity.YELLOW)],
            {},
        ),
        ("2026-06-02T09:00:00", Scope("overdue", "county", ["C2"]), [], {"C2": "按时办结"}),
        (
            "2026-06-30T23:30:00",
            Scope("fees", "county", ["C3"]),
            [
                finding(
                    "F3",
                    "fees",
                    "fee",
                    "over_standard",
                    "C3",
                    "SCJGJ",
                    Severity.RED,
                    subject="=1+1",
                )
            ],
            {},
        ),
        (
            "2026-07-01T00:30:00",
            Scope("repeat-inspection", "county", ["E1"]),
            [
                finding(
                    "F4",
                    "repeat-inspection",
                    "inspection",
                    "repeat",
                    None,
                    "WJJ",
                    Severity.YELLOW,
                    subject="INS-9",
                    target="E1",
                )
            ],
            {},
        ),
    ]
    for when, scope, findings, notes in steps:
        at = local(when)
        with store.begin() as connection:
            reconcile(
                connection, scope, findings, at=at, now=at, notes=notes, listener=issuer.listener
            )
    sent_at = local("2026-07-02T09:00:00")
    Outbox(store, MailSettings(), FileSender(outbox), clock=lambda: sent_at).deliver_due(sent_at)
    ids: dict[str, int] = {}
    with store.connect() as connection:
        for violation_id, evidence in connection.execute(
            select(schema.violations.c.id, schema.violations.c.evidence)
        ):
            ids[evidence["label"]] = violation_id
    return ids


# Tests that only read share one recorded store per backend for their module; these are
# the fixture functions, registered by each such module under conftest's names:
#     recorded_url = pytest.fixture(scope="module", params=BACKENDS, name="store_url")(...)
BACKENDS = ["sqlite", "postgresql"]


def module_store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('history') / 'store.db'}"
    from tests.conftest import _pg_url, pg_schema_engine

    database = request.getfixturevalue("pg_database")
    schema_name = f"history_{uuid.uuid4().hex[:8]}"
    pg_schema_engine(database, schema_name).dispose()
    return _pg_url(database) + f"?options=-csearch_path%3D{schema_name}"


def module_store(store_url: str) -> Iterator[Engine]:
    engine = create_store_engine(store_url)
    upgrade_store(engine)
    yield engine
    engine.dispose()


def module_history(store: Engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    return fill_history(store, tmp_path_factory.mktemp("outbox"))


recorded_url = pytest.fixture(scope="module", params=BACKENDS, name="store_url")(module_store_url)
recorded_store = pytest.fixture(scope="module", name="store")(module_store)
recorded_history = pytest.fixture(scope="module", name="history")(module_history)


def labels(store: Engine, ids: dict[str, int], violation_filter: ViolationFilter) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    with store.connect() as connection:
        page = queries.list_violations(
            connection, violation_filter, Sort((("id", False),)), Page(1, 500)
        )
    assert page.total == len(page.items)
    return {by_id[item["id"]] for item in page.items}


FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"F1", "F2", "F3", "F4", "F5"}),
    ({"dept": ("SCJGJ",)}, {"F1", "F3"}),
    ({"dept": ("SCJGJ", "WJJ")}, {"F1", "F3", "F4"}),
    ({"rule": ("overdue",)}, {"F1", "F2"}),
    ({"kind": ("fee",)}, {"F3"}),
    ({"kind": ("procedure", "inspection")}, {"F4", "F5"}),
    ({"finding": ("repeat",)}, {"F4"}),
    ({"severity": ("red",)}, {"F3", "F5"}),
    ({"severity": ("yellow",)}, {"F1", "F2", "F4"}),  # F1 was upgraded to yellow
    ({"severity": ("warning",)}, set()),
    ({"state": ("resolved",)}, {"F2"}),
    ({"state": ("open",)}, {"F1", "F3", "F4", "F5"}),
    ({"source": ("city",)}, {"F5"}),
    ({"case": ("C2",)}, {"F2"}),
    # The second quarter in local time: F3 at 6/30 23:30 is in, F4 at 7/1 00:30 is out
    # (although in UTC it is 6/30 16:30), F5 on 3/31 is out.
    ({"opened_from": date(2026, 4, 1), "opened_to": date(2026, 6, 30)}, {"F1", "F2", "F3"}),
    ({"opened_from": date(2026, 7, 1)}, {"F4"}),
    ({"opened_to": date(2026, 3, 31)}, {"F5"}),
    ({"resolved_from": date(2026, 6, 2), "resolved_to": date(2026, 6, 2)}, {"F2"}),
    ({"resolved_to": date(2026, 6, 1)}, set()),
    ({"dept": ("SCJGJ",), "severity": ("red",)}, {"F3"}),
]


def test_each_filter_selects_exactly_the_matching_violations(
    store: Engine, history: dict[str, int]
) -> None:
    for criteria, expected in FILTER_CASES:
        assert labels(store, history, ViolationFilter(**criteria)) == expected, criteria


def test_text_parameters_parse_to_the_same_filter_as_the_api_and_cli_give_them() -> None:
    query = parse_query(
        {
            "dept": ["SCJGJ,WJJ", "ZJJ"],
            "severity": ["red"],
            "opened_from": ["2026-04-01"],
            "opened_to": ["2026-06-30"],
            "sort": ["-severity,dept"],
            "page": ["2"],
            "page_size": ["20"],
        }
    )
    assert query.filter == ViolationFilter(
        dept=("SCJGJ", "WJJ", "ZJJ"),
        severity=("red",),
        opened_from=date(2026, 4, 1),
        opened_to=date(2026, 6, 30),
    )
    assert query.sort == Sort((("severity", True), ("dept", False)))
    assert (query.page.number, query.page.size, query.page.offset) == (2, 20, 20)
    assert query.filter.as_params() == {
        "dept": "SCJGJ,WJJ,ZJJ",
        "severity": "red",
        "opened_from": "2026-04-01",
        "opened_to": "2026-06-30",
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"severity": ["purple"]}, "severity: expected one of warning, yellow, red, got 'purple'"),
        ({"state": ["closed"]}, "state: expected one of open, resolved, got 'closed'"),
        ({"kind": ["Over Due"]}, "kind: not a valid value, got 'Over Due'"),
        ({"finding": ["x;drop"]}, "finding: not a valid value, got 'x;drop'"),
        ({"dept": ["A\x00B"]}, "dept: not a valid value, got 'A\\x00B'"),
        ({"case": ["x" * 129]}, f"case: not a valid value, got '{'x' * 129}'"),
        ({"dept": [",".join(str(n) for n in range(101))]}, "dept: at most 100 values, got 101"),
        (
            {"opened_from": ["2026-13-01"]},
            "opened_from: expected a date like \"2026-06-30\", got '2026-13-01'",
        ),
        (
            {"resolved_to": ["9999-12-31"]},
            "resolved_to: must be within 1900-2999, got '9999-12-31'",
        ),
        (
            {"opened_from": ["2026-07-01"], "opened_to": ["2026-06-30"]},
            "opened_from: 2026-07-01 is after opened_to 2026-06-30",
        ),
        (
            {"opened_from": ["2026-07-01", "2026-07-02"]},
            "opened_from: given 2 times, expected once",
        ),
        (
            {"sort": ["-colour"]},
            "sort: expected keys among " + ", ".join(SORT_KEYS) + ", got '-colour'",
        ),
        ({"page": ["0"]}, "page: must be 1..100000, got 0"),
        ({"page": ["-1"]}, "page: expected a positive whole number, got '-1'"),
        ({"page": ["99999999999"]}, "page: expected a positive whole number, got '99999999999'"),
        ({"page_size": ["501"]}, "page_size: must be 1..500, got 501"),
        ({"page_size": ["١٠"]}, "page_size: expected a positive whole number, got '١٠'"),
        (
            {"sevrity": ["red"]},
            "sevrity: unknown parameter (known: dept, rule, kind, finding, "
            "severity, state, source, case, opened_from, opened_to, resolved_from, resolved_to, "
            "sort, page, page_size)",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_parameter_and_the_value(
    params: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(FilterError) as caught:
        parse_query(params)
    assert str(caught.value) == message


def test_the_filter_object_validates_itself_too() -> None:
    with pytest.raises(FilterError, match="severity: expected one of"):
        ViolationFilter(severity=("grey",))
    with pytest.raises(FilterError, match=r"page_size: must be 1\.\.500, got 0"):
        Page(1, 0)


def test_every_sort_key_orders_all_rows_and_pages_partition_them(
    store: Engine, history: dict[str, int]
) -> None:
    everything = ViolationFilter()
    with store.connect() as connection:
        for key in SORT_KEYS:
            for descending in (False, True):
                sort = Sort(((key, descending),))
                full = queries.list_violations(connection, everything, sort, Page(1, 500))
                assert sorted(item["id"] for item in full.items) == sorted(history.values())
                paged = [
                    item["id"]
                    for number in (1, 2, 3)
                    for item in queries.list_violations(
                        connection, everything, sort, Page(number, 2)
                    ).items
                ]
                assert paged == [item["id"] for item in full.items], (key, descending)
        by_severity = queries.list_violations(
            connection, everything, Sort((("severity", True), ("opened_at", False))), Page(1, 500)
        )
        last = queries.list_violations(connection, everything, Sort(), Page(3, 2))
        beyond = queries.list_violations(connection, everything, Sort(), Page(4, 2))
    by_id = {v: k for k, v in history.items()}
    assert [by_id[item["id"]] for item in by_severity.items] == ["F5", "F3", "F1", "F2", "F4"]
    assert (last.total, last.pages, len(last.items)) == (5, 3, 1)
    assert (beyond.total, beyond.items) == (5, [])


def test_resolved_at_sorts_open_violations_last_on_both_backends(
    store: Engine, history: dict[str, int]
) -> None:
    with store.connect() as connection:
        page = queries.list_violations(
            connection, ViolationFilter(), Sort((("resolved_at", False),)), Page(1, 500)
        )
    assert page.items[0]["id"] == history["F2"]


def test_show_gives_evidence_every_event_with_time_and_actor_and_the_notices(
    store: Engine, history: dict[str, int]
) -> None:
    with store.connect() as connection:
        detail = queries.violation_detail(connection, history["F1"])
        assert queries.violation_detail(connection, 999_999) is None
    assert detail is not None
    assert (detail["dept_name"], detail["matter_name"], detail["severity"]) == (
        SCJGJ_NAME,
        MATTER,
        "yellow",
    )
    assert detail["evidence"]["note"] == NOTE
    assert [
        (e["event"], e["severity_from"], e["severity_to"], e["at"], e["actor"])
        for e in detail["events"]
    ] == [
        ("opened", None, "warning", "2026-04-10T09:00:00+08:00", "watchdog"),
        ("upgraded", "warning", "yellow", "2026-04-15T09:00:00+08:00", "watchdog"),
    ]
    (notice,) = detail["notices"]  # the warning got none; the yellow upgrade got one
    assert notice["number"].startswith("JC-2026-")
    assert notice["severity"] == "yellow"
    assert notice["state"] == "delivered"
    assert [(e["event"], e["actor"]) for e in notice["events"]] == [
        ("issued", "watchdog"),
        ("delivered", "watchdog"),
    ]
    assert sorted((d["role"], d["recipient"], d["state"]) for d in notice["deliveries"]) == [
        ("cc", "jianchake@example.gov.cn", "sent"),
        ("to", "scj@example.gov.cn", "sent"),
    ]
    assert all(d["delivered_at"] == "2026-07-02T09:00:00+08:00" for d in notice["deliveries"])


def test_a_resolved_violation_shows_the_reason_it_was_resolved(
    store: Engine, history: dict[str, int]
) -> None:
    with store.connect() as connection:
        detail = queries.violation_detail(connection, history["F2"])
    assert detail is not None
    assert detail["resolved_at"] == "2026-06-02T09:00:00+08:00"
    assert [(e["event"], e["reason"]) for e in detail["events"]] == [
        ("opened", None),
        ("resolved", "按时办结"),
    ]


def test_a_notice_shows_its_body_events_deliveries_and_violations(
    store: Engine, history: dict[str, int]
) -> None:
    with store.connect() as connection:
        number = queries.violation_detail(connection, history["F3"])["notices"][0]["number"]  # type: ignore[index]
        notice = queries.notice_detail(connection, number)
        assert queries.notice_detail(connection, "JC-1999-000001") is None
    assert notice is not None
    assert [v["id"] for v in notice["violations"]] == [history["F3"]]
    assert notice["dept_name"] == SCJGJ_NAME
    assert "整改" in notice["body_text"]
    assert notice["severity"] == "red"


def test_summary_counts_by_department_and_local_month(
    store: Engine, history: dict[str, int]
) -> None:
    with store.connect() as connection:
        by_month = queries.summary(connection, ViolationFilter())
        by_dept = queries.summary(connection, ViolationFilter(), by="dept")
        q2 = queries.summary(
            connection,
            ViolationFilter(opened_from=date(2026, 4, 1), opened_to=date(2026, 6, 30)),
            by="dept",
        )
    counts = ("total", "warning", "yellow", "red", "open", "resolved")
    assert [
        (r["dept_code"], r["dept_name"], r["month"], *(r[c] for c in counts)) for r in by_month
    ] == [
        ("SCJGJ", SCJGJ_NAME, "2026-04", 1, 0, 1, 0, 1, 0),
        ("SCJGJ", SCJGJ_NAME, "2026-06", 1, 0, 0, 1, 1, 0),  # 6/30 23:30 local
        ("WJJ", None, "2026-07", 1, 0, 1, 0, 1, 0),  # 7/1 00:30 local, June in UTC
        ("ZJJ", ZJJ_NAME, "2026-03", 1, 0, 0, 1, 1, 0),
        ("ZJJ", ZJJ_NAME, "2026-05", 1, 0, 1, 0, 0, 1),
    ]
    assert [(r["dept_code"], r["total"], r["red"]) for r in by_dept] == [
        ("SCJGJ", 2, 1),
        ("WJJ", 1, 0),
        ("ZJJ", 2, 1),
    ]
    assert "month" not in by_dept[0]
    assert [(r["dept_code"], r["total"]) for r in q2] == [("SCJGJ", 2), ("ZJJ", 1)]


def _records(store: Engine) -> list[dict[str, Any]]:
    return list(queries.iter_violations(store, ViolationFilter(), Sort((("id", False),))))


def test_csv_export_opens_in_excel_and_round_trips_chinese_text(
    store: Engine, history: dict[str, int]
) -> None:
    records = _records(store)
    buffer = io.StringIO(newline="")
    assert export.write(iter(records), "csv", buffer) == 5
    data = buffer.getvalue().encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    text = data.decode("utf-8").removeprefix("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [int(row["id"]) for row in rows] == [r["id"] for r in records]
    f1 = next(row for row in rows if int(row["id"]) == history["F1"])
    assert (f1["dept_name"], f1["matter_name"]) == (SCJGJ_NAME, MATTER)
    assert json.loads(f1["evidence"])["note"] == NOTE
    f3 = next(row for row in rows if int(row["id"]) == history["F3"])
    assert f3["subject"] == "'=1+1"  # never run as a formula by Excel
    assert "\r\n" in text  # Excel's line ends
    assert export.read_csv(data.decode("utf-8")) == records


def test_jsonl_export_round_trips(store: Engine, history: dict[str, int]) -> None:
    records = _records(store)
    buffer = io.StringIO()
    assert export.write(iter(records), "jsonl", buffer) == 5
    text = buffer.getvalue()
    assert len(text.splitlines()) == 5
    assert SCJGJ_NAME in text  # not \u-escaped
    assert export.read_jsonl(text) == records


def test_an_export_with_nothing_matching_is_just_the_header() -> None:
    buffer = io.StringIO()
    assert export.write(iter([]), "csv", buffer) == 0
    assert buffer.getvalue() == "\ufeff" + ",".join(export.CSV_COLUMNS) + "\r\n"


# -- the commands -------------------------------------------------------------------


def write_config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[store]
url = "{store_url}"

[rules]
dir = "{RULES}"

[[sources]]
name = "county"
url = "sqlite:///{tmp_path / "unused-source.db"}"

[sources.queries]
cases = "SELECT 1"
""",
        encoding="utf-8",
    )
    return path


def test_violations_commands_list_show_export_and_summarise(
    store: Engine,
    store_url: str,
    history: dict[str, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(write_config(tmp_path, store_url))

    assert main(["violations", "--config", config]) == 0  # as before: the open ones
    out = capsys.readouterr().out
    assert "C1" in out and "C2" not in out

    assert (
        main(["violations", "list", "--config", config, "--dept", "SCJGJ", "--format", "jsonl"])
        == 0
    )
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(item["id"] for item in listed) == sorted([history["F1"], history["F3"]])

    assert (
        main(
            [
                "violations",
                "list",
                "--config",
                config,
                "--sort",
                "id",
                "--page-size",
                "2",
                "--page",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "page 3 of 3 (5 violations)" in out
    assert SCJGJ_NAME in out or ZJJ_NAME in out or "WJJ" in out

    assert main(["violations", "list", "--config", config, "--severity", "purple"]) == 2
    assert capsys.readouterr().err == (
        "error: --severity: expected one of warning, yellow, red, got 'purple'\n"
    )
    assert main(["violations", "list", "--config", config, "--opened-to", "2026-02-30"]) == 2
    assert "--opened-to: expected a date" in capsys.readouterr().err

    assert main(["violations", "show", str(history["F1"]), "--config", config]) == 0
    out = capsys.readouterr().out
    assert "opened" in out and "upgraded" in out and "watchdog" in out
    assert "notice JC-2026-" in out and "delivery to scj@example.gov.cn: sent" in out
    assert main(["violations", "show", "999999", "--config", config]) == 2
    assert capsys.readouterr().err == "error: violation 999999 not found\n"

    target = tmp_path / "q2.csv"
    assert (
        main(
            [
                "violations",
                "export",
                "--config",
                config,
                "--format",
                "csv",
                "--opened-from",
                "2026-04-01",
                "--opened-to",
                "2026-06-30",
                "--output",
                str(target),
            ]
        )
        == 0
    )
    exported = export.read_csv(target.read_bytes().decode("utf-8"))
    assert sorted(r["id"] for r in exported) == sorted(history[k] for k in ("F1", "F2", "F3"))
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")

    assert (
        main(
            ["violations", "export", "--config", config, "--format", "jsonl", "--state", "resolved"]
        )
        == 0
    )
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["id"] == history["F2"]

    assert main(["violations", "summary", "--config", config, "--by", "dept"]) == 0
    out = capsys.readouterr().out
    assert SCJGJ_NAME in out and "resolved" in out
