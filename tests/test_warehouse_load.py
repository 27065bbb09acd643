"""Loading the lake into raw.*: new files only, one row per event id, lineage kept, baselines only
once complete, and all or nothing."""

from __future__ import annotations

import pytest
from test_history_scenarios import course, eid, event
from test_warehouse_support import DISTRICT, rows, write_baseline, write_lake_events

from clever_elt.lake.layout import Lake
from clever_elt.warehouse import LoadResult, Warehouse
from clever_elt.warehouse.load import LakeFileError


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def warehouse(tmp_path, lake) -> Warehouse:
    return Warehouse(tmp_path / "warehouse.duckdb", lake.root, tmp_path / "compiled")


def test_second_load_reads_only_new_files(lake, warehouse):
    write_lake_events(lake, [event(0, "courses.created", course("Math"))])
    assert warehouse.load() == LoadResult(1, 1, 0, 0, 0)
    assert warehouse.load() == LoadResult(0, 0, 0, 0, 0)
    write_lake_events(lake, [event(60, "courses.updated", course("Algebra"), {"name": "Math"})])
    assert warehouse.load() == LoadResult(1, 1, 0, 0, 0)
    assert [r["event_id"] for r in rows(warehouse, "select event_id from raw.events")] == [
        eid(0),
        eid(60),
    ]


def test_events_repeated_in_the_lake_are_loaded_once_and_counted(lake, warehouse):
    created = event(0, "courses.created", course("Math"))
    updated = event(60, "courses.updated", course("Algebra"), {"name": "Math"})
    write_lake_events(lake, [created, updated])
    write_lake_events(lake, [updated])  # a page written again after a crash
    assert warehouse.load() == LoadResult(2, 2, 1, 0, 0)
    files = sorted(path.relative_to(lake.root).as_posix() for path in lake.event_files())
    assert rows(warehouse, "select event_id, _file from raw.events order by event_id") == [
        {"event_id": eid(0), "_file": files[0]},
        {"event_id": eid(60), "_file": files[0]},  # the first file by name wins
    ]
    write_lake_events(lake, [created])
    assert warehouse.load() == LoadResult(1, 0, 1, 0, 0)
    assert rows(
        warehouse, "select count(*) as n, count(distinct event_id) as ids from raw.events"
    ) == [{"n": 2, "ids": 2}]


@pytest.mark.parametrize("previous_at", ["data", "top"])
def test_previous_attributes_are_read_from_either_place(lake, warehouse, previous_at):
    write_lake_events(
        lake,
        [
            event(
                60, "courses.updated", course("Algebra"), {"name": "Math"}, previous_at=previous_at
            )
        ],
    )
    warehouse.load()
    assert rows(warehouse, "select previous_attributes->>'name' as old from raw.events") == [
        {"old": "Math"}
    ]


def test_raw_events_keep_typed_columns_json_and_lineage(lake, warehouse):
    write_lake_events(lake, [event(0, "courses.created", course("Math"))])
    warehouse.load()
    [row] = rows(
        warehouse,
        "select event_id, type, record_type, action, created, object_id, object->>'name' as name, "
        "previous_attributes, district, problem, _raw, _file, typeof(created) as created_type, "
        "typeof(object) as object_type, _extracted_at is not null as extracted, "
        "_loaded_at is not null as loaded from raw.events",
    )
    assert row == {
        "event_id": eid(0),
        "type": "courses.created",
        "record_type": "courses",
        "action": "created",
        "created": row["created"],
        "object_id": "c1",
        "name": "Math",
        "previous_attributes": None,
        "district": DISTRICT,
        "problem": None,
        "_raw": None,
        "_file": f"events/district={DISTRICT}/date=2024-09-02/part-{eid(0)}-{eid(0)}.parquet",
        "created_type": "TIMESTAMP WITH TIME ZONE",
        "object_type": "JSON",
        "extracted": True,
        "loaded": True,
    }


def test_uninterpretable_events_are_kept_with_their_original_json(lake, warehouse):
    write_lake_events(lake, [event(0, "students.updated", {"id": "x1", "name": "old API"})])
    warehouse.load()
    [row] = rows(warehouse, "select problem, _raw->>'type' as type from raw.events")
    assert row == {"problem": "unknown event type", "type": "students.updated"}


def test_baseline_loads_only_once_its_manifest_exists(lake, warehouse):
    write_baseline(
        lake, {"courses": [course("Math")]}, taken="20240902T080000000000Z", anchor_event_id=None
    )
    # Files of an interrupted baseline (no manifest) are not part of any baseline.
    orphan = lake.snapshot_dir("courses", DISTRICT, "20240902T090000000000Z")
    orphan.mkdir(parents=True)
    for path in lake.snapshot_dir("courses", DISTRICT, "20240902T080000000000Z").glob("*.parquet"):
        (orphan / path.name).write_bytes(path.read_bytes())
    assert warehouse.load() == LoadResult(1, 0, 0, 1, 1)
    assert warehouse.load() == LoadResult(0, 0, 0, 0, 0)
    assert rows(
        warehouse,
        "select district, record_type, taken, object_id, object->>'name' as name "
        "from raw.snapshots",
    ) == [
        {
            "district": DISTRICT,
            "record_type": "courses",
            "taken": "20240902T080000000000Z",
            "object_id": "c1",
            "name": "Math",
        }
    ]
    [baseline] = rows(warehouse, "select * exclude (_loaded_at) from raw.baselines")
    assert baseline["reason"] == "initial" and baseline["counts"] == '{"courses":1}'
    assert str(baseline["taken_at"]) == "2024-09-02 08:00:00+00:00"


def test_a_damaged_lake_file_fails_the_load_whole_naming_it_and_what_to_do(lake, warehouse):
    write_lake_events(lake, [event(0, "courses.created", course("Math"))])
    warehouse.load()
    write_lake_events(lake, [event(60, "courses.updated", course("Algebra"), {"name": "Math"})])
    broken = lake.event_file(DISTRICT, "2024-09-02", eid(90), eid(90))
    broken.write_bytes(b"not parquet")
    with pytest.raises(LakeFileError) as caught:
        warehouse.load()
    message, name = str(caught.value), broken.relative_to(lake.root).as_posix()
    assert message.startswith(f"lake file {name} cannot be read (")
    assert f"restore it from a backup, or move it out of {lake.root}" in message
    assert rows(warehouse, "select count(*) as n from raw.events") == [{"n": 1}]
    broken.unlink()
    assert warehouse.load().new_events == 1
