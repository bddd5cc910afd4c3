"""The procedure rule (违反程序), on hand-made cases.

Unless a test says otherwise: the general template accept → review → decide → complete
with review and decide by different people, a case accepted 2026-03-02 09:00 Beijing time
and evaluated 2026-03-10 18:00.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from watchdog.engine.procedure import (
    ProcedureBreach,
    ProcedureTemplate,
    StepRecord,
    check_procedure,
)

CST = timezone(timedelta(hours=8))
GENERAL = ProcedureTemplate(
    name="general",
    steps=("accept", "review", "decide", "complete"),
    distinct_handlers=(("review", "decide"),),
)
ACCEPTED = datetime(2026, 3, 2, 9, 0, tzinfo=CST)
AS_OF = datetime(2026, 3, 10, 18, 0, tzinfo=CST)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=CST)


def step(
    code: str, when: datetime | None, handler: str | None = None, step_id: str = ""
) -> StepRecord:
    return StepRecord(step_id or f"s-{code}", code, when, handler)


def check(
    *steps: StepRecord,
    template: ProcedureTemplate = GENERAL,
    accepted_at: datetime | None = ACCEPTED,
    as_of: datetime = AS_OF,
) -> list[tuple[str, str]]:
    return [(b.finding, b.subject) for b in check_procedure(template, accepted_at, steps, as_of)]


def clean_case() -> list[StepRecord]:
    return [
        step("accept", at(2, 9), "u1"),
        step("review", at(3, 10), "u2"),
        step("decide", at(4, 11), "u3"),
        step("complete", at(4, 15), "u1"),
    ]


def test_a_case_done_by_the_book_has_no_finding() -> None:
    assert check(*clean_case()) == []


def test_a_case_without_acceptance_is_not_checked() -> None:
    assert check(step("decide", at(1, 10), "u1"), accepted_at=None) == []


def test_a_case_accepted_after_the_evaluation_instant_is_not_checked_yet() -> None:
    assert check(step("decide", at(1, 10)), accepted_at=at(11, 9)) == []


def test_a_missing_step_is_found_when_a_later_template_step_is_present() -> None:
    assert check(step("accept", at(2, 9)), step("decide", at(4, 11))) == [
        ("step_missing", "review")
    ]


def test_a_missing_step_does_not_count_while_no_later_template_step_is_present() -> None:
    # An open case part way through: decide and complete are simply not done yet.
    assert check(step("accept", at(2, 9)), step("review", at(3, 10))) == []


def test_every_gap_before_the_last_present_step_is_missing() -> None:
    assert check(step("complete", at(4, 15))) == [
        ("step_missing", "accept"),
        ("step_missing", "decide"),
        ("step_missing", "review"),
    ]


def test_a_step_that_finished_before_an_earlier_template_step_is_out_of_order() -> None:
    steps = [
        step("accept", at(2, 9)),
        step("review", at(4, 11), "u2"),
        step("decide", at(3, 10), "u3"),
        step("complete", at(4, 15)),
    ]
    assert check(*steps) == [("out_of_order", "decide")]


def test_out_of_order_is_reported_once_per_early_step_listing_every_step_it_overtook() -> None:
    major = ProcedureTemplate("major", ("accept", "review", "verify", "decide"))
    steps = [
        step("accept", at(2, 9)),
        step("review", at(3, 10)),
        step("verify", at(3, 11)),
        step("decide", at(2, 15)),
    ]
    breaches = check_procedure(major, ACCEPTED, steps, AS_OF)
    assert [(b.finding, b.subject) for b in breaches] == [("out_of_order", "decide")]
    overtaken = breaches[0].evidence["finished_before"]
    assert [s["step_code"] for s in overtaken] == ["review", "verify"]


def test_two_steps_with_the_same_timestamp_are_not_out_of_order() -> None:
    # Systems often stamp decide and complete together.
    steps = [*clean_case()[:2], step("decide", at(4, 15), "u3"), step("complete", at(4, 15))]
    assert check(*steps) == []


def test_a_step_finished_before_acceptance_is_found() -> None:
    steps = [step("review", at(2, 8, 30), "u2"), *clean_case()[2:], step("accept", at(2, 9))]
    assert check(*steps) == [("before_acceptance", "review"), ("out_of_order", "review")]


def test_a_step_outside_the_template_finished_before_acceptance_is_found_too() -> None:
    steps = [*clean_case(), step("site_inspection", at(1, 16))]
    assert check(*steps) == [("before_acceptance", "site_inspection")]


def test_a_supplement_notice_before_acceptance_is_fine() -> None:
    # 《行政许可法》 art. 32: the 补正告知 is what comes before acceptance.
    steps = [step("supplement_notice", at(1, 10)), *clean_case()]
    assert check(*steps) == []


def test_an_accept_step_recorded_before_accepted_at_is_not_before_acceptance() -> None:
    steps = [step("accept", at(2, 8)), *clean_case()[1:]]
    assert check(*steps) == []


def test_a_step_finished_at_the_acceptance_instant_is_not_before_it() -> None:
    steps = [step("accept", ACCEPTED), step("review", ACCEPTED, "u2")]
    assert check(*steps) == []


def test_times_in_different_offsets_compare_as_instants() -> None:
    # 00:30 UTC is 08:30 in Beijing, half an hour before acceptance.
    review = step("review", datetime(2026, 3, 2, 0, 30, tzinfo=UTC), "u2")
    assert check(step("accept", ACCEPTED), review) == [
        ("before_acceptance", "review"),
        ("out_of_order", "review"),
    ]


def test_steps_finished_after_the_evaluation_instant_have_not_happened() -> None:
    # Were the decide counted, review would be missing; as of now it has not happened.
    steps = [step("accept", at(2, 9)), step("decide", at(11, 9), "u2")]
    assert check(*steps) == []


def test_a_step_finished_exactly_at_the_evaluation_instant_has_happened() -> None:
    steps = [step("accept", at(2, 9)), step("decide", AS_OF)]
    assert check(*steps) == [("step_missing", "review")]


def test_unfinished_steps_are_ignored() -> None:
    steps = [step("accept", at(2, 9)), step("decide", None, "u1")]
    assert check(*steps) == []


def test_a_repeated_step_code_is_represented_by_its_earliest_occurrence() -> None:
    # Review redone after the decision: the first review stands, so the order holds.
    steps = [*clean_case(), step("review", at(5, 10), "u3", step_id="s-review-again")]
    assert check(*steps) == []


def test_the_handler_of_the_earliest_occurrence_is_the_one_compared() -> None:
    steps = [
        step("accept", at(2, 9)),
        step("review", at(3, 16), "u3", step_id="s-review-late"),  # same person as decide
        step("review", at(3, 10), "u2", step_id="s-review-first"),
        step("decide", at(4, 11), "u3"),
    ]
    assert check(*steps) == []
    swapped = [
        step("accept", at(2, 9)),
        step("review", at(3, 16), "u2", step_id="s-review-late"),
        step("review", at(3, 10), "u3", step_id="s-review-first"),
        step("decide", at(4, 11), "u3"),
    ]
    assert check(*swapped) == [("same_handler", "review,decide")]


def test_an_occurrence_after_the_evaluation_instant_does_not_represent_its_code() -> None:
    steps = [
        step("accept", at(2, 9)),
        step("review", at(11, 9), "u2", step_id="s-review-future"),
        step("decide", at(4, 11), "u3"),
    ]
    assert check(*steps) == [("step_missing", "review")]


def test_the_same_handler_on_a_distinct_handler_pair_is_found() -> None:
    steps = [*clean_case()[:2], step("decide", at(4, 11), "u2"), clean_case()[3]]
    assert check(*steps) == [("same_handler", "review,decide")]


def test_the_same_handler_subject_follows_template_order_however_the_pair_is_written() -> None:
    reversed_pair = ProcedureTemplate(
        "general", GENERAL.steps, distinct_handlers=(("decide", "review"), ("review", "decide"))
    )
    steps = [*clean_case()[:2], step("decide", at(4, 11), "u2")]
    assert check(*steps, template=reversed_pair) == [("same_handler", "review,decide")]


def test_a_null_handler_never_matches_another() -> None:
    steps = [step("accept", at(2, 9)), step("review", at(3, 10)), step("decide", at(4, 11))]
    assert check(*steps) == []
    assert check(step("review", at(3, 10)), step("decide", at(4, 11), "u3")) == [
        ("step_missing", "accept")
    ]


def test_the_same_person_on_steps_that_are_not_paired_is_fine() -> None:
    # accept and complete are both by u1 in the clean case.
    assert check(*clean_case()) == []


def test_findings_are_sorted_by_finding_then_subject_whatever_the_row_order() -> None:
    steps = [
        step("complete", at(1, 10), "u1"),
        step("decide", at(1, 9), "u1"),
        step("review", at(3, 10), "u1"),
    ]
    expected = [
        ("before_acceptance", "complete"),
        ("before_acceptance", "decide"),
        ("out_of_order", "complete"),
        ("out_of_order", "decide"),
        ("same_handler", "review,decide"),
        ("step_missing", "accept"),
    ]
    assert check(*steps) == expected
    assert check(*reversed(steps)) == expected


def test_evidence_is_plain_json_a_person_can_check_by_hand() -> None:
    steps = [
        step("accept", at(2, 9), "u1"),
        step("review", at(3, 10), "u2", step_id="S-17"),
        step("decide", at(4, 11), "u2", step_id="S-18"),
    ]
    [breach] = check_procedure(GENERAL, ACCEPTED, steps, AS_OF)
    assert breach == ProcedureBreach(
        finding="same_handler",
        subject="review,decide",
        evidence={
            "template": "general",
            "template_steps": ["accept", "review", "decide", "complete"],
            "accepted_at": "2026-03-02T09:00:00+08:00",
            "as_of": "2026-03-10T18:00:00+08:00",
            "handler_id": "u2",
            "steps": [
                {
                    "step_code": "review",
                    "step_id": "S-17",
                    "finished_at": "2026-03-03T10:00:00+08:00",
                    "handler_id": "u2",
                },
                {
                    "step_code": "decide",
                    "step_id": "S-18",
                    "finished_at": "2026-03-04T11:00:00+08:00",
                    "handler_id": "u2",
                },
            ],
        },
    )
    assert json.loads(json.dumps(breach.evidence)) == breach.evidence


def test_missing_step_evidence_names_the_later_steps_that_prove_it() -> None:
    [breach] = check_procedure(
        GENERAL, ACCEPTED, [step("decide", at(4, 11), "u3"), step("accept", at(2, 9))], AS_OF
    )
    assert breach.evidence["missing_step"] == "review"
    assert [s["step_id"] for s in breach.evidence["later_steps"]] == ["s-decide"]


def test_a_template_needs_at_least_one_step() -> None:
    with pytest.raises(ValueError) as excinfo:
        ProcedureTemplate("empty", ())
    assert str(excinfo.value) == "procedure template 'empty' has no steps"


def test_a_template_may_not_repeat_a_step() -> None:
    with pytest.raises(ValueError) as excinfo:
        ProcedureTemplate("loop", ("accept", "review", "accept"))
    assert str(excinfo.value) == (
        "procedure template 'loop' repeats step(s) accept: got ['accept', 'review', 'accept']"
    )


def test_a_distinct_handler_pair_must_name_steps_of_the_template() -> None:
    with pytest.raises(ValueError) as excinfo:
        ProcedureTemplate("immediate", ("accept", "complete"), (("review", "complete"),))
    assert str(excinfo.value) == (
        "procedure template 'immediate': distinct-handler pair ['review', 'complete'] "
        "names step(s) not in the template ['accept', 'complete']: review"
    )


def test_a_distinct_handler_pair_must_name_two_different_steps() -> None:
    with pytest.raises(ValueError) as excinfo:
        ProcedureTemplate("general", GENERAL.steps, (("review", "review"),))
    assert str(excinfo.value) == (
        "procedure template 'general': a distinct-handler pair needs two different steps, "
        "got ['review', 'review']"
    )


def test_naive_times_are_refused() -> None:
    naive_step = StepRecord("S-1", "review", datetime(2026, 3, 3, 10, 0), "u2")
    with pytest.raises(ValueError) as excinfo:
        check_procedure(GENERAL, AS_OF - timedelta(days=3), [naive_step], AS_OF)
    assert str(excinfo.value) == (
        "step 'S-1' finished_at must be timezone-aware, got 2026-03-03T10:00:00"
    )
    with pytest.raises(ValueError, match=r"^accepted_at must be timezone-aware"):
        check_procedure(GENERAL, datetime(2026, 3, 2, 9, 0), [], AS_OF)
