"""Each check passes on clean history and fails, with a count and examples, on the problem it is
for: overlapping versions, missed events, uninterpretable events, values outside their type or
outside the spec, and baselines that disagree with events."""

from __future__ import annotations

import pytest
from test_history_scenarios import Scenario, course, eid, event, user

from clever_elt.warehouse import checks


@pytest.fixture
def scenario(tmp_path) -> Scenario:
    return Scenario(tmp_path)


def run(scenario: Scenario, check, **kwargs) -> checks.CheckOutcome:
    with scenario.warehouse.connect(read_only=True) as con:
        return check(con, **kwargs)


def test_clean_history_passes_every_check(scenario):
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(60, "courses.updated", course("Algebra"), {"name": "Math"}),
        event(70, "users.created", user()),
    )
    scenario.baseline(
        {"courses": [course("Algebra")], "users": [user()]}, anchor_event_id=eid(70)
    ).load()
    with scenario.warehouse.connect(read_only=True) as con:
        for model in scenario.warehouse.models():
            for name, check in checks.checks_for(model).items():
                outcome = check(con)
                assert outcome.passed, (model.name, name, outcome)
        for name, check in checks.raw_checks().items():
            assert check(con).passed, name


def test_overlapping_versions_fail_the_interval_check(scenario):
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(60, "courses.updated", course("Algebra"), {"name": "Math"}),
    ).load()
    with scenario.warehouse.connect() as con:
        con.execute(
            "update clever.courses_history set valid_to = valid_to + interval 1 hour "
            "where _version = 1"
        )
    outcome = run(scenario, checks.history_intervals, record_type="courses")
    assert (outcome.passed, outcome.severity, outcome.count) == (False, "ERROR", 1)
    assert outcome.examples[0]["problem"] == "does not start where the previous version ends"


def test_current_table_grain_check_counts_duplicate_ids(scenario):
    scenario.events(event(0, "courses.created", course("Math"))).load()
    with scenario.warehouse.connect() as con:
        con.execute("insert into clever.courses_current select * from clever.courses_current")
    outcome = run(
        scenario, checks.grain_unique, relation=("clever", "courses_current"), grain=("id",)
    )
    assert (outcome.passed, outcome.count, outcome.examples) == (
        False,
        1,
        [{"id": "c1", "copies": 2}],
    )


def test_missed_events_are_reported_with_the_flagged_version(scenario):
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(60, "courses.updated", course("Algebra"), {"name": "Geometry"}),
    ).load()
    outcome = run(scenario, checks.missed_events, record_type="courses")
    assert (outcome.passed, outcome.severity, outcome.count) == (False, "WARN", 1)
    assert outcome.examples[0]["_event_id"] == eid(60)


def test_uninterpretable_events_are_reported_not_dropped(scenario):
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(1, "students.updated", {"id": "x1", "name": "old API"}),
        event(2, "courses.updated", course("Algebra"), {"name": "Math"}),
    ).load()
    outcome = run(scenario, checks.flagged_events)
    assert (outcome.passed, outcome.count) == (False, 1)
    assert outcome.examples[0]["problem"] == "unknown event type"
    assert outcome.examples[0]["type"] == "students.updated"


def test_values_that_do_not_fit_their_type_are_counted_by_path(scenario):
    term = {"id": "t1", "district": "d", "start_date": "not a date", "end_date": ""}
    scenario.events(
        event(0, "terms.created", term),
        event(0, "users.created", user(name="Kim Jacobi", email={"work": "k@x"}), counter=1),
    ).load()
    terms = run(scenario, checks.cast_failures, record_type="terms")
    assert (terms.passed, terms.count) == (False, 2)
    assert sorted(e["path"] for e in terms.examples) == ["end_date", "start_date"]
    users = run(scenario, checks.cast_failures, record_type="users")
    assert users.count == 2
    assert sorted(e["path"] for e in users.examples) == ["$.email", "$.name"]
    assert run(scenario, checks.cast_failures, record_type="courses").passed


def test_fields_outside_the_spec_are_counted_by_path(scenario):
    contact = {
        "id": "u2",
        "district": "d",
        "roles": {"contact": {"phone": "1", "relationship": "Other"}},
        "favourite_colour": "teal",
    }
    scenario.events(
        event(0, "users.created", contact),
        event(1, "users.created", user(roles__student__ext={"anything": {"goes": 1}}), counter=1),
    ).load()
    outcome = run(scenario, checks.fields_outside_spec, record_type="users")
    assert (outcome.passed, outcome.count) == (False, 2)
    assert sorted(e["path"] for e in outcome.examples) == [
        "$.favourite_colour",
        "$.roles.contact.relationship",
    ]


def test_baseline_disagreeing_with_events_names_the_fields(scenario):
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(1, "courses.created", {**course("Art"), "id": "c2"}, counter=1),
    )
    scenario.baseline(
        {"courses": [course("Math", number="999"), {**course("Music"), "id": "c3"}]},
        anchor_event_id=eid(1, 1),
    ).load()
    outcome = run(scenario, checks.baseline_disagreements, record_type="courses")
    assert (outcome.passed, outcome.count) == (False, 2)
    assert [(e["id"], e["disagreement"], e["fields"]) for e in outcome.examples] == [
        ("c1", "fields differ", ["number"]),
        ("c2", "missing from baseline", []),
    ]
