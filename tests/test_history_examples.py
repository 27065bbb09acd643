"""The real recorded payloads (tests/data/clever_examples), written into a lake as extraction does,
give exactly this history: reconstruction from real previous_attributes (whole `name`, sparse
`roles` and `ext`, whole arrays), the missed events between the 2023-03-12 and 2023-03-26 batches,
a re-created id, and the old `students.*` type kept and flagged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_warehouse_support import rows

from clever_elt.lake.events import EventPageDecoder, write_events
from clever_elt.lake.layout import Lake
from clever_elt.warehouse import Warehouse, checks

EXAMPLES = Path(__file__).resolve().parent / "data" / "clever_examples"
DISTRICT = "58da8a43cc70ab00017a1a87"
SYSTEM = "valid_from, valid_to, _event_id, _change, _missed_before"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


MARCH_12_51 = utc("2023-03-12T16:09:51Z")
MARCH_12_52 = utc("2023-03-12T16:09:52Z")
MARCH_26_40 = utc("2023-03-26T16:09:40Z")
MARCH_26_41 = utc("2023-03-26T16:09:41Z")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    if not EXAMPLES.is_dir():
        pytest.skip(f"recorded payloads not found at {EXAMPLES}")
    root = tmp_path_factory.mktemp("examples")
    lake = Lake(root / "lake")
    decoder = EventPageDecoder()
    items = [
        json.loads(path.read_text())
        for path in sorted(EXAMPLES.glob("*.json"))
        if not path.name.startswith("events_list_page")
    ]
    write_events(lake, DISTRICT, decoder(json.dumps({"data": items, "links": []}).encode()))
    for page in sorted(EXAMPLES.glob("events_list_page*.json")):
        write_events(lake, DISTRICT, decoder(page.read_bytes()))
    warehouse = Warehouse(root / "warehouse.duckdb", lake.root, root / "compiled")
    warehouse.load()
    warehouse.build()
    return warehouse


def history(warehouse: Warehouse, record_type: str, columns: str, where: str = "true") -> list:
    return [
        tuple(row.values())
        for row in rows(
            warehouse,
            f"select {columns}, {SYSTEM} from clever.{record_type}_history where {where} "
            "order by id, _version",
        )
    ]


def test_every_recorded_event_is_loaded_and_the_old_students_type_is_flagged(warehouse):
    assert rows(
        warehouse,
        "select count(*) as events, count(*) filter (where problem is not null) as flagged "
        "from raw.events",
    ) == [{"events": 110, "flagged": 1}]
    assert rows(warehouse, "select type, problem from raw.events where problem is not null") == [
        {"type": "students.updated", "problem": "unknown event type"}
    ]


def test_district_last_sync_history_flags_the_missed_march_syncs(warehouse):
    assert history(warehouse, "districts", "last_sync") == [
        (
            utc("2023-03-09T22:46:43.807Z"),
            None,
            MARCH_12_51,
            "640df94fd306111b2385ee9d",
            "reconstructed",
            False,
        ),
        (
            utc("2023-03-12T16:08:53.776Z"),
            MARCH_12_51,
            MARCH_26_40,
            "640df94fd306111b2385ee9d",
            "updated",
            False,
        ),
        # previous_attributes say 2023-03-23: the syncs in between were never seen.
        (
            utc("2023-03-26T16:08:34.367Z"),
            MARCH_26_40,
            None,
            "64206e4431f12f05cc49076f",
            "updated",
            True,
        ),
    ]


def test_school_ext_and_grades_rebuild_from_sparse_ext(warehouse):
    assert history(
        warehouse,
        "schools",
        "low_grade, high_grade, ext->>'charter_school'",
        "id = '58da8c58155b940248000008'",
    ) == [
        (
            "Ungraded",
            "Ungraded",
            "",
            None,
            MARCH_12_51,
            "640df94fd306111b2385eea4",
            "reconstructed",
            False,
        ),
        ("6", "8", "Y", MARCH_12_51, MARCH_26_40, "640df94fd306111b2385eea4", "updated", False),
        ("6", "8", "Y", MARCH_26_40, None, "64206e4431f12f05cc490776", "updated", True),
    ]


def test_section_roster_rebuilds_from_the_whole_previous_array(warehouse):
    [before, after] = history(warehouse, "sections", "students, len(students)")
    assert (before[1], before[3:], after[1], after[3:]) == (
        17,
        (utc("2014-08-28T18:01:13.872Z"), "53ff6e6b322eced002000088", "reconstructed", False),
        16,
        (None, "53ff6e6b322eced002000088", "updated", False),
    )
    assert before[0] == ["530e5960049e75a9262cff56", *after[0]]


def test_whole_name_and_sparse_roles_rebuild_the_earlier_user(warehouse):
    assert history(
        warehouse,
        "users",
        "name.first, roles.student.gender, roles.student.schools, "
        "roles.student.ext->>'gifted_status', roles.student.grade",
        "id = '58da8c64d7dc0ca068000530'",
    ) == [
        (
            "7",
            "X",
            ["58da8c58155b940248000007"],
            "",
            "9",
            None,
            MARCH_12_52,
            "640df950d306111b2385f78e",
            "reconstructed",
            False,
        ),
        (
            "Emma",
            "F",
            ["58da8c58155b940248000007", "58da8c58155b940248000008"],
            "Y",
            "9",
            MARCH_12_52,
            None,
            "640df950d306111b2385f78e",
            "updated",
            False,
        ),
    ]


def test_sparse_roles_update_repeated_two_weeks_later_is_a_missed_event(warehouse):
    assert history(
        warehouse,
        "users",
        "roles.student.gender, roles.student.ext->>'gifted_status'",
        "id = '58da8c63d7dc0ca0680003ee'",
    ) == [
        ("X", "", None, MARCH_12_52, "640df950d306111b2385f6d3", "reconstructed", False),
        ("M", "Y", MARCH_12_52, MARCH_26_41, "640df950d306111b2385f6d3", "updated", False),
        ("M", "Y", MARCH_26_41, None, "64206e4531f12f05cc490fa5", "updated", True),
    ]


def test_user_created_again_gets_a_second_version(warehouse):
    assert history(warehouse, "users", "name.first", "id = '58da8c64d7dc0ca068000525'") == [
        ("Richard", MARCH_12_52, MARCH_26_41, "640df950d306111b2385f3e8", "created", False),
        ("Richard", MARCH_26_41, None, "64206e4531f12f05cc490cba", "created", False),
    ]


def test_contact_fields_outside_the_spec_are_reported(warehouse):
    with warehouse.connect(read_only=True) as con:
        outcome = checks.fields_outside_spec(con, "users")
    paths = {e["path"] for e in outcome.examples}
    assert {"$.roles.contact.relationship", "$.roles.contact.students"} <= paths
    assert history(
        warehouse,
        "users",
        "roles.contact.phone, roles.contact.student_relationships[1].student",
        "id = '5faac8b8bc447500a10ae8bf' and _version = 1",
    ) == [
        (
            "(348) 880-2855",
            "58da8c65d7dc0ca0680007c9",
            MARCH_12_52,
            MARCH_26_41,
            "640df950d306111b2385f3ec",
            "created",
            False,
        ),
    ]
