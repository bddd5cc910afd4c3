"""The fee rule (目录外收费), on a hand-made catalogue.

FC-01 不动产登记费: max 80, min 50, in force 2020-01-01..2024-12-31, then 2025-01-01..open
      with max 60 (a cut in the standard), charged at the minimum for enterprises.
FC-02 工本费: max 10, applies to matters M-100 and M-200 only, abolished after 2025-06-30.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from watchdog.clock import Severity
from watchdog.engine.fees import (
    FINDING_SEVERITY,
    FINDINGS,
    CatalogueEntry,
    FeeBreach,
    FeeCatalogue,
    FeeRecord,
    check_fee,
)

d = date.fromisoformat

OLD_REGISTRATION = CatalogueEntry(
    code="FC-01",
    name="不动产登记费",
    max_amount=Decimal("80"),
    min_amount=Decimal("50"),
    valid_from=d("2020-01-01"),
    valid_to=d("2024-12-31"),
)
REGISTRATION = CatalogueEntry(
    code="FC-01",
    name="不动产登记费",
    max_amount=Decimal("60.00"),
    min_amount=Decimal("50.00"),
    valid_from=d("2025-01-01"),
    valid_to=None,
    charge_at_minimum=True,
)
CERTIFICATE = CatalogueEntry(
    code="FC-02",
    name="工本费",
    max_amount=Decimal("10"),
    min_amount=None,
    valid_from=d("2020-01-01"),
    valid_to=d("2025-06-30"),
    matters=frozenset({"M-200", "M-100"}),
)
CATALOGUE = FeeCatalogue([REGISTRATION, CERTIFICATE, OLD_REGISTRATION])


def fee(
    code: str,
    amount: str,
    on: str,
    matter: str | None = "M-100",
    name: str | None = None,
) -> FeeRecord:
    return FeeRecord("F-1", code, name, Decimal(amount), d(on), matter)


def findings(record: FeeRecord, *, check_minimum: bool = False) -> list[str]:
    breaches = check_fee(CATALOGUE, record, check_minimum=check_minimum)
    assert all(b.subject == record.fee_id for b in breaches)
    return [b.finding for b in breaches]


def test_a_fee_exactly_at_the_standard_has_no_finding() -> None:
    assert findings(fee("FC-01", "60.00", "2026-03-02")) == []
    assert findings(fee("FC-01", "60", "2026-03-02")) == []


def test_a_fee_above_the_standard_is_over_standard() -> None:
    assert findings(fee("FC-01", "60.01", "2026-03-02")) == ["over_standard"]


def test_the_standard_is_the_one_in_force_on_the_charge_date() -> None:
    # 70 was lawful under the old maximum of 80, not under the new one of 60.
    assert findings(fee("FC-01", "70", "2024-12-31")) == []
    assert findings(fee("FC-01", "70", "2025-01-01")) == ["over_standard"]


def test_a_code_missing_from_the_catalogue_is_not_in_catalogue() -> None:
    assert findings(fee("FC-99", "1", "2026-03-02")) == ["not_in_catalogue"]


def test_an_item_abolished_the_day_before_the_charge_is_not_in_force() -> None:
    assert findings(fee("FC-02", "5", "2025-07-01")) == ["not_in_force"]


def test_an_item_charged_on_its_last_valid_day_is_fine() -> None:
    assert findings(fee("FC-02", "5", "2025-06-30")) == []


def test_an_item_charged_before_it_came_into_force_is_not_in_force() -> None:
    assert findings(fee("FC-02", "5", "2019-12-31")) == ["not_in_force"]
    assert findings(fee("FC-02", "5", "2020-01-01")) == []


def test_an_item_not_in_force_is_not_checked_further() -> None:
    # Over the old standard and for a matter it never applied to: only not_in_force.
    assert findings(fee("FC-02", "99", "2025-07-01", matter="M-999")) == ["not_in_force"]


def test_an_item_for_another_matter_is_not_applicable() -> None:
    assert findings(fee("FC-02", "5", "2025-03-01", matter="M-300")) == ["not_applicable"]


def test_an_item_listing_matters_is_not_applicable_to_a_case_without_a_matter() -> None:
    assert findings(fee("FC-02", "5", "2025-03-01", matter=None)) == ["not_applicable"]


def test_an_item_without_a_matter_list_applies_to_every_matter() -> None:
    assert findings(fee("FC-01", "55", "2026-03-02", matter=None)) == []


def test_over_standard_and_not_applicable_are_both_reported() -> None:
    assert findings(fee("FC-02", "12", "2025-03-01", matter="M-300")) == [
        "not_applicable",
        "over_standard",
    ]


def test_above_the_minimum_is_reported_only_when_asked() -> None:
    record = fee("FC-01", "55", "2026-03-02")
    assert findings(record) == []
    assert findings(record, check_minimum=True) == ["above_minimum"]


def test_a_fee_at_the_minimum_is_fine_where_policy_says_charge_the_minimum() -> None:
    assert findings(fee("FC-01", "50", "2026-03-02"), check_minimum=True) == []


def test_above_the_minimum_is_not_reported_on_top_of_over_standard() -> None:
    assert findings(fee("FC-01", "61", "2026-03-02"), check_minimum=True) == ["over_standard"]


def test_above_the_minimum_needs_an_entry_charged_at_its_minimum() -> None:
    # The old entry has a minimum but no charge-at-minimum policy.
    assert findings(fee("FC-01", "70", "2024-06-01"), check_minimum=True) == []


def test_above_the_minimum_needs_a_minimum() -> None:
    no_minimum = CatalogueEntry(
        "FC-03", "检测费", Decimal("100"), None, d("2020-01-01"), None, charge_at_minimum=True
    )
    catalogue = FeeCatalogue([no_minimum])
    record = fee("FC-03", "100", "2026-03-02")
    assert check_fee(catalogue, record, check_minimum=True) == []


def test_above_the_minimum_is_a_warning_whatever_the_rule_says() -> None:
    assert FINDING_SEVERITY == {"above_minimum": Severity.WARNING}
    assert set(FINDING_SEVERITY) <= set(FINDINGS)


def test_findings_come_in_a_fixed_order() -> None:
    record = fee("FC-02", "12", "2025-03-01", matter="M-300")
    assert check_fee(CATALOGUE, record) == check_fee(
        FeeCatalogue([CERTIFICATE, OLD_REGISTRATION, REGISTRATION]), record
    )
    assert [b.finding for b in check_fee(CATALOGUE, record)] == sorted(findings(record))


def test_evidence_is_plain_json_a_person_can_check_by_hand() -> None:
    record = FeeRecord("F-7", "FC-02", "工本费", Decimal("12.50"), d("2025-03-01"), "M-300")
    not_applicable, over = check_fee(CATALOGUE, record)
    expected_evidence = {
        "fee_code": "FC-02",
        "fee_name": "工本费",
        "amount": "12.50",
        "charged_on": "2025-03-01",
        "matter_code": "M-300",
        "catalogue_entry": {
            "code": "FC-02",
            "name": "工本费",
            "max_amount": "10",
            "min_amount": None,
            "valid_from": "2020-01-01",
            "valid_to": "2025-06-30",
            "matters": ["M-100", "M-200"],
            "charge_at_minimum": False,
        },
    }
    assert not_applicable == FeeBreach("not_applicable", "F-7", expected_evidence)
    assert over == FeeBreach("over_standard", "F-7", expected_evidence)
    assert json.loads(json.dumps(over.evidence)) == over.evidence


def test_not_in_force_evidence_lists_every_validity_of_the_code() -> None:
    [breach] = check_fee(CATALOGUE, fee("FC-02", "5", "2025-07-01"))
    assert [(e["valid_from"], e["valid_to"]) for e in breach.evidence["catalogue_entries"]] == [
        ("2020-01-01", "2025-06-30")
    ]


def test_not_in_catalogue_evidence_is_the_charge_itself() -> None:
    [breach] = check_fee(CATALOGUE, fee("FC-99", "1E+2", "2026-03-02", name="咨询费"))
    assert breach.evidence == {
        "fee_code": "FC-99",
        "fee_name": "咨询费",
        "amount": "100",
        "charged_on": "2026-03-02",
        "matter_code": "M-100",
    }


def test_the_catalogue_lists_entries_of_a_code_oldest_first() -> None:
    assert CATALOGUE.entries_for("FC-01") == (OLD_REGISTRATION, REGISTRATION)
    assert CATALOGUE.entries_for("FC-99") == ()


def test_validity_is_inclusive_at_both_ends() -> None:
    assert CATALOGUE.in_force("FC-01", d("2024-12-31")) is OLD_REGISTRATION
    assert CATALOGUE.in_force("FC-01", d("2025-01-01")) is REGISTRATION
    assert CATALOGUE.in_force("FC-01", d("2019-12-31")) is None
    assert CATALOGUE.in_force("FC-02", d("2025-07-01")) is None


def test_overlapping_validity_for_one_code_is_rejected() -> None:
    overlapping = CatalogueEntry(
        "FC-01", "不动产登记费", Decimal("70"), None, d("2024-06-01"), d("2025-03-31")
    )
    with pytest.raises(ValueError) as excinfo:
        FeeCatalogue([OLD_REGISTRATION, REGISTRATION, overlapping])
    assert str(excinfo.value) == (
        "fee code 'FC-01' has overlapping catalogue entries: "
        "2020-01-01..2024-12-31 and 2024-06-01..2025-03-31"
    )


def test_an_open_ended_entry_overlaps_any_later_one() -> None:
    later = CatalogueEntry("FC-01", "不动产登记费", Decimal("40"), None, d("2030-01-01"), None)
    with pytest.raises(ValueError) as excinfo:
        FeeCatalogue([REGISTRATION, later])
    assert str(excinfo.value) == (
        "fee code 'FC-01' has overlapping catalogue entries: 2025-01-01..open and 2030-01-01..open"
    )


def test_entries_sharing_one_day_overlap() -> None:
    touching = CatalogueEntry("FC-02", "工本费", Decimal("8"), None, d("2025-06-30"), None)
    with pytest.raises(ValueError, match=r"2020-01-01\.\.2025-06-30 and 2025-06-30\.\.open$"):
        FeeCatalogue([CERTIFICATE, touching])


def test_a_minimum_above_the_maximum_is_rejected() -> None:
    with pytest.raises(ValueError) as excinfo:
        CatalogueEntry("FC-05", "评估费", Decimal("10"), Decimal("12"), d("2025-01-01"), None)
    assert str(excinfo.value) == "fee catalogue entry 'FC-05': min_amount 12 exceeds max_amount 10"


def test_a_negative_minimum_is_rejected() -> None:
    with pytest.raises(ValueError) as excinfo:
        CatalogueEntry("FC-05", "评估费", Decimal("10"), Decimal("-1"), d("2025-01-01"), None)
    assert str(excinfo.value) == "fee catalogue entry 'FC-05': min_amount must be >= 0, got -1"


def test_a_validity_ending_before_it_starts_is_rejected() -> None:
    with pytest.raises(ValueError) as excinfo:
        CatalogueEntry("FC-05", "评估费", Decimal("10"), None, d("2025-01-01"), d("2024-12-31"))
    assert str(excinfo.value) == (
        "fee catalogue entry 'FC-05': valid_to 2024-12-31 is before valid_from 2025-01-01"
    )


def test_a_one_day_validity_is_allowed() -> None:
    one_day = CatalogueEntry(
        "FC-06", "临时费", Decimal("1"), None, d("2025-01-01"), d("2025-01-01")
    )
    assert FeeCatalogue([one_day]).in_force("FC-06", d("2025-01-01")) is one_day


def test_an_amount_that_is_not_a_number_is_rejected() -> None:
    with pytest.raises(ValueError) as excinfo:
        FeeRecord("F-9", "FC-01", None, Decimal("NaN"), d("2026-03-02"), None)
    assert str(excinfo.value) == "fee 'F-9': amount must be a number, got NaN"
