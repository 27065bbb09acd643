"""History scenarios: given these events (and baselines) in a real lake, the whole history table is
exactly this, after each load into a real DuckDB file (the shape of dlt's scd2 tests)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_warehouse_support import DISTRICT, event_id, rows, write_baseline, write_lake_events

from clever_elt.lake.layout import Lake
from clever_elt.warehouse import Warehouse

T0 = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)
SYSTEM = (
    "valid_from, valid_to, is_current, is_deleted, _version, _event_id, _change, _missed_before"
)


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


def eid(second: int, counter: int = 0) -> str:
    return event_id(int(at(second).timestamp()), counter)


def event(
    second: int,
    type_: str,
    obj: dict[str, Any],
    previous: dict[str, Any] | None = None,
    counter: int = 0,
    previous_at: str = "data",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": eid(second, counter),
        "type": type_,
        "created": at(second).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "data": {"object": copy.deepcopy(obj)},
    }
    if previous is not None:
        target = body["data"] if previous_at == "data" else body
        target["previous_attributes"] = copy.deepcopy(previous)
    return body


def course(name: str, number: str = "101", **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "district": DISTRICT, "name": name, "number": number, **extra}


class Scenario:
    """A lake and a warehouse under tmp_path; `load()` loads new lake files and rebuilds."""

    def __init__(self, tmp_path):
        self.lake = Lake(tmp_path / "lake")
        self.warehouse = Warehouse(
            tmp_path / "warehouse.duckdb", self.lake.root, tmp_path / "compiled"
        )

    def events(self, *events: dict[str, Any]) -> Scenario:
        write_lake_events(self.lake, list(events))
        return self

    def baseline(self, records: dict[str, list[dict[str, Any]]], **kwargs: Any) -> Scenario:
        taken = kwargs.pop("taken", "20240902T080000000000Z")
        write_baseline(self.lake, records, taken=taken, **kwargs)
        return self

    def load(self) -> Scenario:
        self.warehouse.load()
        self.warehouse.build()
        return self

    def history(self, record_type: str, columns: str) -> list[tuple]:
        return [
            tuple(row.values())
            for row in rows(
                self.warehouse,
                f"select id, {columns}, {SYSTEM} from clever.{record_type}_history "
                "order by id, _version",
            )
        ]

    def current(self, record_type: str, columns: str) -> list[tuple]:
        return [
            tuple(row.values())
            for row in rows(
                self.warehouse,
                f"select id, {columns} from clever.{record_type}_current order by id",
            )
        ]


@pytest.fixture
def scenario(tmp_path) -> Scenario:
    return Scenario(tmp_path)


def test_create_opens_one_current_version(scenario):
    scenario.events(event(0, "courses.created", course("Math"))).load()
    assert scenario.history("courses", "district, name, number") == [
        ("c1", DISTRICT, "Math", "101", at(0), None, True, False, 1, eid(0), "created", False),
    ]
    assert scenario.current("courses", "name, _event_id, _change, _updated_at") == [
        ("c1", "Math", eid(0), "created", at(0)),
    ]


def test_update_closes_the_open_version_at_the_event_time(scenario):
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(60, "courses.updated", course("Algebra"), {"name": "Math"}),
    ).load()
    assert scenario.history("courses", "name") == [
        ("c1", "Math", at(0), at(60), False, False, 1, eid(0), "created", False),
        ("c1", "Algebra", at(60), None, True, False, 2, eid(60), "updated", False),
    ]


def test_delete_closes_the_version_and_opens_a_tombstone_with_the_last_state(scenario):
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(60, "courses.deleted", course("Math")),
    ).load()
    assert scenario.history("courses", "name") == [
        ("c1", "Math", at(0), at(60), False, False, 1, eid(0), "created", False),
        ("c1", "Math", at(60), None, True, True, 2, eid(60), "deleted", False),
    ]
    assert scenario.current("courses", "name") == []


def test_recreated_id_continues_its_history_after_the_tombstone(scenario):
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(60, "courses.deleted", course("Math")),
        event(120, "courses.created", course("Math II")),
    ).load()
    assert scenario.history("courses", "name") == [
        ("c1", "Math", at(0), at(60), False, False, 1, eid(0), "created", False),
        ("c1", "Math", at(60), at(120), False, True, 2, eid(60), "deleted", False),
        ("c1", "Math II", at(120), None, True, False, 3, eid(120), "created", False),
    ]
    assert scenario.current("courses", "name") == [("c1", "Math II")]


def test_two_updates_in_one_second_follow_event_id_order_not_time(scenario):
    # Written out of order in one page: history orders by id, never by position or `created`.
    scenario.events(
        event(0, "courses.created", course("A")),
        event(5, "courses.updated", course("C"), {"name": "B"}, counter=2),
        event(5, "courses.updated", course("B"), {"name": "A"}, counter=1),
    ).load()
    assert scenario.history("courses", "name") == [
        ("c1", "A", at(0), at(5), False, False, 1, eid(0), "created", False),
        ("c1", "B", at(5), at(5), False, False, 2, eid(5, 1), "updated", False),
        ("c1", "C", at(5), None, True, False, 3, eid(5, 2), "updated", False),
    ]


def user(**changes: Any) -> dict[str, Any]:
    record = {
        "id": "u1",
        "district": DISTRICT,
        "email": "kim@example.org",
        "name": {"first": "Kim", "last": "Jacobi", "middle": "J"},
        "roles": {
            "student": {
                "gender": "F",
                "grade": "9",
                "schools": ["s1"],
                "ext": {"gifted_status": ""},
                "location": {"zip": "11377", "address": ""},
            }
        },
        "created": "2024-01-01T00:00:00.000Z",
        "last_modified": "2024-01-01T00:00:00.000Z",
    }
    for path, value in changes.items():
        node = record
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return record


USER_COLUMNS = (
    "name.first, name.middle, roles.student.gender, roles.student.grade, "
    "roles.student.schools, roles.student.ext->>'gifted_status', email"
)


def test_name_update_carries_the_whole_previous_name(scenario):
    scenario.events(
        event(0, "users.created", user()),
        event(
            60,
            "users.updated",
            user(name__first="Kimberly"),
            {"name": {"first": "Kim", "last": "Jacobi", "middle": "J"}},
        ),
    ).load()
    assert scenario.history("users", "name.first, name.last") == [
        ("u1", "Kim", "Jacobi", at(0), at(60), False, False, 1, eid(0), "created", False),
        ("u1", "Kimberly", "Jacobi", at(60), None, True, False, 2, eid(60), "updated", False),
    ]


def test_sparse_roles_update_rebuilds_the_untouched_role_fields(scenario):
    # The first news of u1 is this update: the earlier version is rebuilt by deep-merging the
    # sparse roles diff (only the changed leaves) onto the object.
    scenario.events(
        event(
            60,
            "users.updated",
            user(roles__student__gender="M", roles__student__ext={"gifted_status": "Y"}),
            {"roles": {"student": {"gender": "F", "ext": {"gifted_status": ""}}}},
        )
    ).load()
    assert scenario.history("users", USER_COLUMNS) == [
        (
            "u1",
            "Kim",
            "J",
            "F",
            "9",
            ["s1"],
            "",
            "kim@example.org",
            None,
            at(60),
            False,
            False,
            1,
            eid(60),
            "reconstructed",
            False,
        ),
        (
            "u1",
            "Kim",
            "J",
            "M",
            "9",
            ["s1"],
            "Y",
            "kim@example.org",
            at(60),
            None,
            True,
            False,
            2,
            eid(60),
            "updated",
            False,
        ),
    ]


def test_ext_update_keeps_ext_as_json(scenario):
    school = {
        "id": "s1",
        "district": DISTRICT,
        "name": "Pineapple Elementary",
        "ext": {"charter_school": "N", "title1": {"status": "Y"}},
    }
    changed = copy.deepcopy(school)
    changed["ext"]["charter_school"] = "Y"
    scenario.events(
        event(0, "schools.created", school),
        event(60, "schools.updated", changed, {"ext": {"charter_school": "N"}}),
    ).load()
    assert scenario.history("schools", "ext") == [
        (
            "s1",
            '{"charter_school":"N","title1":{"status":"Y"}}',
            at(0),
            at(60),
            False,
            False,
            1,
            eid(0),
            "created",
            False,
        ),
        (
            "s1",
            '{"charter_school":"Y","title1":{"status":"Y"}}',
            at(60),
            None,
            True,
            False,
            2,
            eid(60),
            "updated",
            False,
        ),
    ]


def section(students: list[str]) -> dict[str, Any]:
    return {"id": "sec1", "district": DISTRICT, "name": "Math 301", "students": students}


def test_roster_array_change_replaces_the_whole_array(scenario):
    scenario.events(
        event(60, "sections.updated", section(["a", "c"]), {"students": ["a", "b", "c"]}),
        event(120, "sections.updated", section(["a", "c", "d"]), {"students": ["a", "c"]}),
    ).load()
    assert scenario.history("sections", "students") == [
        ("sec1", ["a", "b", "c"], None, at(60), False, False, 1, eid(60), "reconstructed", False),
        ("sec1", ["a", "c"], at(60), at(120), False, False, 2, eid(60), "updated", False),
        ("sec1", ["a", "c", "d"], at(120), None, True, False, 3, eid(120), "updated", False),
    ]


def test_first_event_an_update_gets_a_reconstructed_version_without_last_modified(scenario):
    scenario.events(
        event(
            60,
            "courses.updated",
            course("Algebra", last_modified="2024-09-02T07:59:00.000Z"),
            {"name": "Math", "number": None},
            previous_at="top",
        )
    ).load()
    assert scenario.history("courses", "name, number") == [
        ("c1", "Math", None, None, at(60), False, False, 1, eid(60), "reconstructed", False),
        ("c1", "Algebra", "101", at(60), None, True, False, 2, eid(60), "updated", False),
    ]
    # The rebuilt state keeps the old null as a value and has no last_modified (unknown).
    with scenario.warehouse.connect(read_only=True) as con:
        state = con.execute(
            "select clever_prior_state(object, previous_attributes) from raw.events"
        ).fetchall()[0][0]
    assert state == f'{{"id":"c1","district":"{DISTRICT}","name":"Math","number":null}}'


def test_first_event_a_delete_gets_a_version_before_the_tombstone(scenario):
    scenario.events(event(60, "courses.deleted", course("Math"))).load()
    assert scenario.history("courses", "name") == [
        ("c1", "Math", None, at(60), False, False, 1, eid(60), "reconstructed", False),
        ("c1", "Math", at(60), None, True, True, 2, eid(60), "deleted", False),
    ]


def test_object_known_only_from_a_baseline_gets_an_open_version_of_unknown_start(scenario):
    scenario.baseline({"courses": [course("Math")]}, anchor_event_id=None).load()
    assert scenario.history("courses", "name") == [
        ("c1", "Math", None, None, True, False, 1, None, "baseline", False),
    ]
    assert scenario.current("courses", "name, _updated_at, _change") == [
        ("c1", "Math", None, "baseline"),
    ]


def test_baseline_then_update_continues_from_the_baseline_version(scenario):
    scenario.baseline({"courses": [course("Math")]}, anchor_event_id=eid(0)).load()
    scenario.events(event(60, "courses.updated", course("Algebra"), {"name": "Math"})).load()
    assert scenario.history("courses", "name") == [
        ("c1", "Math", None, at(60), False, False, 1, None, "baseline", False),
        ("c1", "Algebra", at(60), None, True, False, 2, eid(60), "updated", False),
    ]


def test_baseline_of_an_object_with_earlier_events_adds_no_version(scenario):
    scenario.events(event(0, "courses.created", course("Math")))
    scenario.baseline({"courses": [course("Math")]}, anchor_event_id=eid(0)).load()
    assert scenario.history("courses", "name") == [
        ("c1", "Math", at(0), None, True, False, 1, eid(0), "created", False),
    ]


def test_baseline_that_raced_a_creation_defers_to_the_created_event(scenario):
    scenario.baseline({"courses": [course("Math")]}, anchor_event_id=eid(0))
    scenario.events(event(30, "courses.created", course("Math"))).load()
    assert scenario.history("courses", "name") == [
        ("c1", "Math", at(30), None, True, False, 1, eid(30), "created", False),
    ]


def test_update_that_disagrees_with_the_version_before_flags_missed_events(scenario):
    # Between these two events the name went Math -> Geometry unseen: the update's old value
    # disagrees with the version it follows. That version runs on until the update.
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(60, "courses.updated", course("Algebra"), {"name": "Geometry"}),
    ).load()
    assert scenario.history("courses", "name") == [
        ("c1", "Math", at(0), at(60), False, False, 1, eid(0), "created", False),
        ("c1", "Algebra", at(60), None, True, False, 2, eid(60), "updated", True),
    ]


def test_keys_an_update_added_and_last_modified_are_not_missed_events(scenario):
    scenario.events(
        event(0, "users.created", user()),
        event(
            60,
            "users.updated",
            user(
                roles__student__grade="10",
                roles__student__home_language="Spanish",
                last_modified="2024-09-02T08:00:59.000Z",
            ),
            {"roles": {"student": {"grade": "9"}}},
        ),
    ).load()
    assert [row[-1] for row in scenario.history("users", "email")] == [False, False]


def test_update_after_a_delete_flags_missed_events(scenario):
    scenario.events(
        event(0, "courses.created", course("Math")),
        event(60, "courses.deleted", course("Math")),
        event(120, "courses.updated", course("Algebra"), {"name": "Math"}),
    ).load()
    assert [row[-1] for row in scenario.history("courses", "name")] == [False, False, True]


def test_field_outside_the_spec_stays_in_raw_json_only(scenario):
    contact = {
        "id": "u2",
        "district": DISTRICT,
        "name": {"last": "Ahmed Roberts"},
        "roles": {"contact": {"phone": "(348) 880-2855", "relationship": "Other"}},
        "favourite_colour": "teal",
    }
    scenario.events(event(0, "users.created", contact)).load()
    assert scenario.history("users", "roles.contact.phone, name.last") == [
        (
            "u2",
            "(348) 880-2855",
            "Ahmed Roberts",
            at(0),
            None,
            True,
            False,
            1,
            eid(0),
            "created",
            False,
        ),
    ]
    columns = {
        row["column_name"] for row in rows(scenario.warehouse, "describe clever.users_history")
    }
    assert "favourite_colour" not in columns
    assert rows(
        scenario.warehouse,
        "select object->>'favourite_colour' as c, object->'roles'->'contact'->>'relationship' as r "
        "from raw.events",
    ) == [{"c": "teal", "r": "Other"}]


def test_empty_string_and_null_stay_distinct(scenario):
    scenario.events(
        event(0, "courses.created", course("", number=None)),
        event(60, "courses.updated", course("", number=""), {"number": None}),
    ).load()
    assert scenario.history("courses", "name, number") == [
        ("c1", "", None, at(0), at(60), False, False, 1, eid(0), "created", False),
        ("c1", "", "", at(60), None, True, False, 2, eid(60), "updated", False),
    ]


def test_value_that_does_not_fit_its_type_is_null_in_its_column_only(scenario):
    term = {
        "id": "t1",
        "district": DISTRICT,
        "name": "Fall",
        "start_date": "not a date",
        "end_date": "2024-12-20T00:00:00.000Z",
    }
    scenario.events(
        event(0, "terms.created", term),
        event(0, "users.created", user(name="Kim Jacobi", email={"work": "k@x"}), counter=1),
    ).load()
    assert scenario.history("terms", "name, start_date, end_date") == [
        (
            "t1",
            "Fall",
            None,
            datetime(2024, 12, 20, tzinfo=UTC),
            at(0),
            None,
            True,
            False,
            1,
            eid(0),
            "created",
            False,
        ),
    ]
    assert scenario.history("users", "name, email, roles.student.grade") == [
        ("u1", None, None, "9", at(0), None, True, False, 1, eid(0, 1), "created", False),
    ]
    assert rows(
        scenario.warehouse,
        "select object->>'start_date' as s from raw.events where type like 'terms%'",
    ) == [{"s": "not a date"}]


def test_second_load_on_top_equals_one_load_of_everything(tmp_path):
    first = [
        event(0, "courses.created", course("Math")),
        event(10, "sections.updated", section(["a"]), {"students": ["a", "b"]}),
    ]
    second = [
        event(60, "courses.updated", course("Algebra"), {"name": "Math"}),
        event(70, "courses.deleted", course("Algebra")),
        event(80, "sections.updated", section(["a", "c"]), {"students": ["a"]}),
    ]
    stepwise = Scenario(tmp_path / "stepwise")
    stepwise.events(*first).load()
    assert stepwise.history("courses", "name") == [
        ("c1", "Math", at(0), None, True, False, 1, eid(0), "created", False),
    ]
    stepwise.events(*second).load()
    at_once = Scenario(tmp_path / "at_once")
    at_once.events(*first, *second).load()
    for record_type, columns in (("courses", "name"), ("sections", "students")):
        assert stepwise.history(record_type, columns) == at_once.history(record_type, columns)
    assert stepwise.history("courses", "name") == [
        ("c1", "Math", at(0), at(60), False, False, 1, eid(0), "created", False),
        ("c1", "Algebra", at(60), at(70), False, False, 2, eid(60), "updated", False),
        ("c1", "Algebra", at(70), None, True, True, 3, eid(70), "deleted", False),
    ]


def test_events_repeated_across_lake_files_count_once(scenario):
    created = event(0, "courses.created", course("Math"))
    scenario.events(created)
    scenario.events(created, event(60, "courses.updated", course("Algebra"), {"name": "Math"}))
    scenario.load()
    assert [row[1] for row in scenario.history("courses", "name")] == ["Math", "Algebra"]


class TestResyncAfterGap:
    """The cursor expired: events between the lost cursor and the first retained event are gone.

    Before the gap: c1, c2, c3, c4 exist. During it (unseen): c1 renamed, c2 unchanged, c3 deleted,
    c5 created. After it the first retained event (at 1000) updates c4; a resync baseline follows.
    """

    def build(self, scenario: Scenario) -> Scenario:
        scenario.events(
            *[
                event(i, "courses.created", {**course(f"Course {i}"), "id": f"c{i}"}, counter=i)
                for i in (1, 2, 3, 4)
            ]
        ).load()
        scenario.events(
            event(
                1000,
                "courses.updated",
                {**course("Course 4b"), "id": "c4"},
                {"name": "Course 4"},
            ),
        )
        scenario.baseline(
            {
                "courses": [
                    {**course("Course 1 renamed"), "id": "c1"},
                    {**course("Course 2"), "id": "c2"},
                    {**course("Course 4b"), "id": "c4"},
                    {**course("Course 5"), "id": "c5"},
                ]
            },
            taken="20240902T090000000000Z",
            anchor_event_id=eid(1000),
            reason="resync",
            first_retained_event_id=eid(1000),
            lost_cursor=eid(4, 4),
        )
        return scenario.load()

    def test_history_resumes_at_the_first_retained_event(self, scenario):
        history = self.build(scenario).history("courses", "name")
        assert history == [
            ("c1", "Course 1", at(1), at(1000), False, False, 1, eid(1, 1), "created", False),
            ("c1", "Course 1 renamed", at(1000), None, True, False, 2, None, "resync", False),
            ("c2", "Course 2", at(2), None, True, False, 1, eid(2, 2), "created", False),
            ("c3", "Course 3", at(3), at(1000), False, False, 1, eid(3, 3), "created", False),
            ("c3", "Course 3", at(1000), None, True, True, 2, None, "resync", False),
            ("c4", "Course 4", at(4), at(1000), False, False, 1, eid(4, 4), "created", False),
            ("c4", "Course 4b", at(1000), None, True, False, 2, eid(1000), "updated", False),
            ("c5", "Course 5", at(1000), None, True, False, 1, None, "resync", False),
        ]
        assert [row[0] for row in scenario.current("courses", "name")] == ["c1", "c2", "c4", "c5"]
