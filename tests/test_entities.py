"""The canonical row contract: conversions, and the reasons a row is quarantined."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.sources.entities import ENTITIES, BadValue, content_hash, parse_timestamp
from watchdog.sources.validation import RowValidator, ValidatedRow
from watchdog.store.encoding import SQLITE

SHANGHAI = ZoneInfo("Asia/Shanghai")


def case_row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "case_id": "371302-2026-000001",
        "matter_code": "SC001",
        "matter_name": "食品经营许可证核发",
        "dept_code": "SCJGJ",
        "dept_name": "市场监督管理局",
        "applicant_id": None,
        "applied_at": "2026-03-02 09:00:00",
        "accepted_at": "2026-03-02 10:00:00",
        "promised_limit": 10,
        "statutory_limit": "20",
        "limit_unit": None,
        "completed_at": None,
        "result": None,
        "updated_at": "2026-03-02 10:00:00",
    }
    row.update(changes)
    return row


def validate_case(**changes: object) -> ValidatedRow | str:
    return RowValidator(ENTITIES["cases"], SHANGHAI).validate(case_row(**changes))


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-02 09:30:00",
        "2026-03-02T09:30:00",
        "2026-03-02T09:30:00+08:00",
        "20260302093000",
        datetime(2026, 3, 2, 9, 30),
        datetime(2026, 3, 2, 1, 30, tzinfo=UTC),
    ],
)
def test_timestamps_in_common_forms_mean_the_same_instant(value: object) -> None:
    assert parse_timestamp(value, SHANGHAI) == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def test_a_date_is_midnight_in_the_source_zone() -> None:
    expected = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    assert parse_timestamp(date(2026, 3, 2), SHANGHAI) == expected
    assert parse_timestamp("20260302", SHANGHAI) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-13-01 10:00:00", "unparsable timestamp '2026-13-01 10:00:00'"),
        ("yesterday", "unparsable timestamp 'yesterday'"),
        ("0001-01-01 00:00:00", "implausible timestamp '0001-01-01 00:00:00'"),
        (3.5, "unparsable timestamp 3.5"),
    ],
)
def test_bad_timestamps_are_described(value: object, message: str) -> None:
    with pytest.raises(BadValue) as caught:
        parse_timestamp(value, SHANGHAI)
    assert str(caught.value) == message


def test_a_good_case_row_is_put_in_canonical_form() -> None:
    checked = validate_case()
    assert not isinstance(checked, str)
    values = checked.as_dict()
    assert values["accepted_at"] == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert values["statutory_limit"] == 20
    assert values["limit_unit"] == "W"  # the documented default
    assert checked.key == "371302-2026-000001"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"case_id": None}, "case_id: missing"),
        ({"case_id": "  "}, "case_id: missing"),
        ({"dept_code": None}, "dept_code: missing"),
        (
            {"accepted_at": "2026-02-30 10:00"},
            "accepted_at: unparsable timestamp '2026-02-30 10:00'",
        ),
        ({"promised_limit": -3}, "promised_limit: negative limit -3"),
        ({"promised_limit": "ten"}, "promised_limit: expected an integer limit, got 'ten'"),
        ({"promised_limit": None}, "promised_limit: missing"),
        ({"limit_unit": "X"}, "limit_unit: unknown limit unit 'X' (expected one of W, N)"),
        ({"updated_at": None}, "updated_at: missing"),
    ],
)
def test_a_row_that_breaks_the_contract_gets_a_precise_reason(
    changes: dict[str, object], reason: str
) -> None:
    assert validate_case(**changes) == reason


def test_fee_amounts_are_decimals_and_must_not_be_negative() -> None:
    validator = RowValidator(ENTITIES["fees"], SHANGHAI)
    row = {
        "fee_id": "F1",
        "case_id": "C1",
        "fee_code": "FS-001",
        "fee_name": "不动产登记费",
        "amount": 80.5,
        "charged_at": "2026-03-02 10:00:00",
        "updated_at": "2026-03-02 10:00:00",
    }
    checked = validator.validate(row)
    assert not isinstance(checked, str)
    assert checked.as_dict()["amount"] == Decimal("80.50")
    assert validator.validate({**row, "amount": "-1"}) == "amount: invalid amount '-1'"
    assert validator.validate({**row, "amount": "abc"}) == (
        "amount: expected a decimal amount, got 'abc'"
    )


def test_pause_and_inspection_kinds_are_checked_against_the_canonical_lists() -> None:
    pauses = RowValidator(ENTITIES["pauses"], SHANGHAI)
    row = {
        "pause_id": "P1",
        "case_id": "C1",
        "kind": "Hearing",
        "started_at": "2026-03-02",
        "ended_at": None,
        "granted_days": None,
        "updated_at": "2026-03-02",
    }
    checked = pauses.validate(row)
    assert not isinstance(checked, str) and checked.as_dict()["kind"] == "hearing"
    assert pauses.validate({**row, "kind": "holiday"}) == (
        "kind: unknown pause kind 'holiday' (expected one of extension, hearing, expert_review, "
        "testing, site_survey, supplement, other)"
    )


def test_the_content_hash_changes_with_content_only() -> None:
    first, again, changed = validate_case(), validate_case(), validate_case(result="1")
    assert not isinstance(first, str) and not isinstance(again, str)
    assert not isinstance(changed, str)
    assert content_hash(first.values) == content_hash(again.values)
    assert content_hash(first.values) != content_hash(changed.values)


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2099, 12, 31)),
    form=st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%Y%m%d%H%M%S"]),
    zone=st.sampled_from(["Asia/Shanghai", "Asia/Kolkata", "America/New_York", "UTC"]),
)
def test_the_sqlite_fast_path_stores_the_same_utc_text_as_the_exact_path(
    moment: datetime, form: str, zone: str
) -> None:
    text = moment.strftime(form)
    validator = RowValidator(ENTITIES["cases"], ZoneInfo(zone), encoding=SQLITE)
    checked = validator.validate(case_row(accepted_at=text, updated_at=text))
    assert not isinstance(checked, str)
    exact = parse_timestamp(text, ZoneInfo(zone)).replace(tzinfo=None)
    expected = exact.isoformat(sep=" ", timespec="microseconds")
    assert checked.as_dict()["accepted_at"] == expected
    assert checked.as_dict()["updated_at"] == expected
