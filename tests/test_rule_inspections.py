"""Repeat inspection (重复检查), on hand-made cases from domain.md's precise definition.

Defaults: a window of 30 natural days with both ends included, at most 1 counted unit in
it, complaint and follow-up inspections exempt, no yearly cap.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from watchdog.engine.inspections import (
    InspectionRecord,
    RepeatBreach,
    RepeatParams,
    find_repeats,
)

d = date.fromisoformat


def insp(
    inspection_id: str,
    on: str,
    *,
    dept: str = "SCJGJ",
    target: str = "91370100MA3C000001",
    kind: str = "random",
    group: str | None = None,
    name: str | None = "济南某某食品有限公司",
) -> InspectionRecord:
    return InspectionRecord(
        inspection_id=inspection_id,
        target_id=target,
        target_name=name,
        dept_code=dept,
        inspected_on=d(on),
        kind=kind,
        joint_group=group,
    )


def subjects(breaches: list[RepeatBreach]) -> list[tuple[str, str]]:
    return [(b.subject, b.dept_code) for b in breaches]


def test_two_inspections_30_days_apart_are_a_repeat_charged_to_the_later_one() -> None:
    (breach,) = find_repeats(
        [insp("I2", "2026-03-31", dept="ZJJ"), insp("I1", "2026-03-01", dept="SCJGJ")]
    )
    assert (breach.subject, breach.dept_code, breach.target_id) == (
        "I2",
        "ZJJ",
        "91370100MA3C000001",
    )
    assert breach.finding == "repeat"
    assert breach.evidence == {
        "target_id": "91370100MA3C000001",
        "target_name": "济南某某食品有限公司",
        "date": "2026-03-31",
        "dept_code": "ZJJ",
        "inspection_ids": ["I2"],
        "reasons": ["window"],
        "window_days": 30,
        "max_in_window": 1,
        "window_start": "2026-03-01",
        "units_in_window": 2,
        "earlier_in_window": [
            {
                "inspection_id": "I1",
                "date": "2026-03-01",
                "dept_code": "SCJGJ",
                "inspection_ids": ["I1"],
            }
        ],
        "yearly_cap": None,
    }
    assert json.loads(json.dumps(breach.evidence)) == breach.evidence


def test_two_inspections_31_days_apart_are_not_a_repeat() -> None:
    assert find_repeats([insp("I1", "2026-03-01"), insp("I2", "2026-04-01")]) == []


def test_a_joint_group_of_three_departments_on_one_date_counts_once() -> None:
    joint = [
        insp("J1", "2026-05-12", dept="SCJGJ", kind="joint", group="G7"),
        insp("J2", "2026-05-12", dept="XFJ", kind="joint", group="G7"),
        insp("J3", "2026-05-12", dept="YJGLJ", kind="joint", group="G7"),
    ]
    assert find_repeats(joint) == []


def test_an_inspection_10_days_after_a_joint_group_is_a_repeat_of_its_own_department() -> None:
    (breach,) = find_repeats(
        [
            insp("J3", "2026-05-12", dept="YJGLJ", kind="joint", group="G7"),
            insp("J1", "2026-05-12", dept="SCJGJ", kind="joint", group="G7"),
            insp("J2", "2026-05-12", dept="XFJ", kind="joint", group="G7"),
            insp("R9", "2026-05-22", dept="ZJJ", kind="routine"),
        ]
    )
    assert subjects([breach]) == [("R9", "ZJJ")]
    assert breach.evidence["earlier_in_window"] == [
        {
            "inspection_id": "J1",
            "date": "2026-05-12",
            "dept_code": "SCJGJ",
            "inspection_ids": ["J1", "J2", "J3"],
        }
    ]


def test_a_complaint_triggered_inspection_is_exempt() -> None:
    inspections = [insp("I1", "2026-03-01"), insp("I2", "2026-03-05", kind="complaint")]
    assert find_repeats(inspections) == []


def test_a_follow_up_inspection_is_exempt() -> None:
    inspections = [insp("I1", "2026-03-01"), insp("I2", "2026-03-05", kind="followup")]
    assert find_repeats(inspections) == []


def test_exempt_kinds_are_a_parameter() -> None:
    inspections = [insp("I1", "2026-03-01"), insp("I2", "2026-03-05", kind="complaint")]
    params = RepeatParams(exempt_kinds=frozenset({"followup"}))
    assert subjects(find_repeats(inspections, params)) == [("I2", "SCJGJ")]


def test_two_inspections_on_one_date_are_ordered_by_id_and_the_larger_id_is_the_repeat() -> None:
    inspections = [insp("I-0002", "2026-03-01", dept="ZJJ"), insp("I-0001", "2026-03-01")]
    assert subjects(find_repeats(inspections)) == [("I-0002", "ZJJ")]


def test_with_max_in_window_2_it_takes_three_inspections_to_repeat() -> None:
    params = RepeatParams(max_in_window=2)
    two = [insp("I1", "2026-03-01"), insp("I2", "2026-03-15")]
    assert find_repeats(two, params) == []
    (breach,) = find_repeats([*two, insp("I3", "2026-03-31")], params)
    assert breach.subject == "I3"
    assert breach.evidence["units_in_window"] == 3
    assert [u["inspection_id"] for u in breach.evidence["earlier_in_window"]] == ["I1", "I2"]


def test_a_joint_group_spread_over_several_dates_is_dated_at_its_earliest() -> None:
    # Dated 03-01, the group is 30 days before I9 (a repeat); dated 03-03 it would be 28.
    # Its latest member (04-02) is after I9, yet the group still counts as the earlier unit.
    inspections = [
        insp("J2", "2026-03-01", dept="XFJ", kind="joint", group="G1"),
        insp("J1", "2026-04-02", dept="SCJGJ", kind="joint", group="G1"),
        insp("I9", "2026-03-31", dept="ZJJ"),
        insp("I0", "2026-05-01", dept="ZJJ"),  # 31 days after I9: no repeat
    ]
    (breach,) = find_repeats(inspections)
    assert subjects([breach]) == [("I9", "ZJJ")]
    assert breach.evidence["earlier_in_window"] == [
        {
            "inspection_id": "J1",
            "date": "2026-03-01",
            "dept_code": "SCJGJ",
            "inspection_ids": ["J1", "J2"],
        }
    ]


def test_a_joint_group_is_represented_by_its_smallest_id_and_that_rows_department() -> None:
    inspections = [
        insp("I1", "2026-03-01"),
        insp("J2", "2026-03-10", dept="XFJ", kind="joint", group="G1"),
        insp("J1", "2026-03-12", dept="ZJJ", kind="joint", group="G1"),
    ]
    (breach,) = find_repeats(inspections)
    assert subjects([breach]) == [("J1", "ZJJ")]
    assert breach.evidence["date"] == "2026-03-10"
    assert breach.evidence["inspection_ids"] == ["J1", "J2"]


def test_joint_groups_with_the_same_name_at_different_targets_are_different_units() -> None:
    inspections = [
        insp("J1", "2026-03-01", target="A", group="G1"),
        insp("J2", "2026-03-01", target="B", group="G1"),
    ]
    assert find_repeats(inspections) == []


def test_the_yearly_cap_is_counted_per_department() -> None:
    # Window of 1 day so that only the cap can fire; two departments, cap 2 each.
    params = RepeatParams(window_days=1, yearly_cap=2)
    inspections = [
        insp("A1", "2026-02-01", dept="SCJGJ"),
        insp("B1", "2026-03-01", dept="ZJJ"),
        insp("A2", "2026-04-01", dept="SCJGJ"),
        insp("B2", "2026-05-01", dept="ZJJ"),
        insp("A3", "2026-06-01", dept="SCJGJ"),
        insp("B3", "2026-07-01", dept="ZJJ"),
        insp("A4", "2027-01-10", dept="SCJGJ"),  # a new year starts a new count
    ]
    breaches = find_repeats(inspections, params)
    assert subjects(breaches) == [("A3", "SCJGJ"), ("B3", "ZJJ")]
    a3 = breaches[0].evidence
    assert a3["reasons"] == ["yearly_cap"]
    assert (a3["year"], a3["units_in_year"], a3["yearly_cap"]) == (2026, 3, 2)
    assert [u["inspection_id"] for u in a3["allowed_in_year"]] == ["A1", "A2"]


def test_a_unit_breaching_both_window_and_cap_is_one_breach_with_both_reasons() -> None:
    params = RepeatParams(yearly_cap=1)
    inspections = [insp("I1", "2026-03-01"), insp("I2", "2026-03-20")]
    (breach,) = find_repeats(inspections, params)
    assert breach.subject == "I2"
    assert breach.evidence["reasons"] == ["window", "yearly_cap"]
    assert [u["inspection_id"] for u in breach.evidence["earlier_in_window"]] == ["I1"]
    assert [u["inspection_id"] for u in breach.evidence["allowed_in_year"]] == ["I1"]


def test_inspections_of_different_targets_never_interact() -> None:
    inspections = [
        insp("I1", "2026-03-01", target="91370100MA3C000001"),
        insp("I2", "2026-03-01", target="91370100MA3C000002"),
        insp("I3", "2026-03-02", target="91370100MA3C000003"),
    ]
    assert find_repeats(inspections, RepeatParams(yearly_cap=1)) == []


def test_output_is_ordered_by_target_date_and_id_whatever_the_input_order() -> None:
    inspections = [
        insp("Z2", "2026-03-05", target="B"),
        insp("Z1", "2026-03-01", target="B"),
        insp("Y3", "2026-03-09", target="A"),
        insp("Y2", "2026-03-02", target="A"),
        insp("Y1", "2026-03-02", target="A"),
    ]
    breaches = find_repeats(iter(inspections))
    assert [(b.target_id, b.subject) for b in breaches] == [
        ("A", "Y2"),
        ("A", "Y3"),
        ("B", "Z2"),
    ]
    assert find_repeats(reversed(inspections)) == breaches


def test_a_joint_group_takes_another_members_name_when_its_representative_has_none() -> None:
    inspections = [
        insp("I1", "2026-03-01"),
        insp("J1", "2026-03-02", kind="joint", group="G", name=None),
        insp("J2", "2026-03-02", kind="joint", group="G", name="某某公司"),
    ]
    (breach,) = find_repeats(inspections)
    assert breach.evidence["target_name"] == "某某公司"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_days": -3}, "window_days must be positive, got -3"),
        ({"window_days": 0}, "window_days must be positive, got 0"),
        ({"window_days": True}, "window_days must be positive, got True"),
        ({"max_in_window": 0}, "max_in_window must be at least 1, got 0"),
        ({"yearly_cap": 0}, "yearly_cap must be at least 1 or None, got 0"),
        (
            {"exempt_kinds": frozenset({"complaint", "reinspection"})},
            "exempt_kinds has unknown kinds ['reinspection'], "
            "known: random, routine, complaint, followup, joint",
        ),
        (
            {"exempt_kinds": "complaint"},
            "exempt_kinds must be a set of kinds, got 'complaint'",
        ),
    ],
)
def test_invalid_parameters_are_refused_with_what_was_given(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        RepeatParams(**kwargs)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_exempt_kinds_given_as_a_plain_set_are_kept_hashable() -> None:
    params = RepeatParams(exempt_kinds={"complaint"})  # type: ignore[arg-type]
    assert params.exempt_kinds == frozenset({"complaint"})
    assert hash(params) == hash(RepeatParams(exempt_kinds=frozenset({"complaint"})))


def test_evidence_lists_the_nearest_20_earlier_units_but_counts_them_all() -> None:
    inspections = [insp(f"I{n:03d}", "2026-03-01") for n in range(1, 31)]
    breaches = find_repeats(inspections)
    assert len(breaches) == 29
    last = breaches[-1].evidence
    assert last["units_in_window"] == 30
    earlier = [u["inspection_id"] for u in last["earlier_in_window"]]
    assert earlier == [f"I{n:03d}" for n in range(10, 30)]
