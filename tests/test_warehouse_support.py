"""Helpers that put events and baselines into a real lake the way extraction does, and read back.

Scenario tests across the warehouse test modules import these; the tests here pin the helpers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clever_elt.lake.events import EventPageDecoder, write_events
from clever_elt.lake.layout import Lake
from clever_elt.lake.snapshots import BaselineManifest, RecordPageDecoder, write_records
from clever_elt.warehouse import Warehouse, connect

DISTRICT = "d0000000000000000000000a"


def event_id(second: int, counter: int = 0) -> str:
    """An ObjectId whose time bytes are `second` (Unix time), ordered by (second, counter)."""
    return f"{second:08x}{'0' * 10}{counter:06x}"


def write_lake_events(lake: Lake, events: list[dict[str, Any]], district: str = DISTRICT) -> None:
    """Write events (the `<event>` objects of CLEVER_API.md) as one list page, like extraction."""
    page = {
        "data": [{"data": event, "uri": f"/v3.1/events/{event.get('id')}"} for event in events],
        "links": [],
    }
    write_events(lake, district, EventPageDecoder()(json.dumps(page).encode()))


def write_baseline(
    lake: Lake,
    records: dict[str, list[dict[str, Any]]],
    taken: str,
    anchor_event_id: str | None,
    reason: str = "initial",
    first_retained_event_id: str | None = None,
    lost_cursor: str | None = None,
    district: str = DISTRICT,
) -> BaselineManifest:
    """Write a complete Data-API baseline (records by record type) and its manifest."""
    decoder = RecordPageDecoder()
    for record_type, rows in records.items():
        page = {"data": [{"data": r, "uri": f"/v3.1/{record_type}/{r['id']}"} for r in rows]}
        page["links"] = []
        write_records(lake, record_type, district, taken, decoder(json.dumps(page).encode()))
    manifest = BaselineManifest(
        district=district,
        taken=taken,
        reason=reason,
        anchor_event_id=anchor_event_id,
        lost_cursor=lost_cursor,
        first_retained_event_id=first_retained_event_id,
        counts={rt: len(rows) for rt, rows in records.items()},
    )
    manifest.write(lake)
    return manifest


def build(tmp_path: Path) -> Warehouse:
    """Load the lake under tmp_path/lake into tmp_path/warehouse.duckdb and build every model."""
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", tmp_path / "lake", tmp_path / "compiled")
    warehouse.load()
    warehouse.build()
    return warehouse


def rows(warehouse: Warehouse, sql: str) -> list[dict[str, Any]]:
    with warehouse.connect(read_only=True) as con:
        relation = con.sql(sql)
        names = relation.columns
        return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def test_event_ids_sort_by_time_then_counter():
    assert event_id(1_700_000_000, 2) < event_id(1_700_000_000, 10) < event_id(1_700_000_001)
    assert len(event_id(1_700_000_000)) == 24


def test_written_events_load_back_whole(tmp_path):
    lake = Lake(tmp_path / "lake")
    event = {
        "id": event_id(1_700_000_000),
        "type": "courses.created",
        "created": "2023-11-14T22:13:20.000Z",
        "data": {"object": {"id": "c1", "name": "Math", "district": DISTRICT}},
    }
    write_lake_events(lake, [event])
    warehouse = Warehouse(tmp_path / "w.duckdb", lake.root, tmp_path / "compiled")
    assert warehouse.load().new_events == 1
    with connect(warehouse.db_path) as con:
        got = con.execute("select event_id, object->>'name', problem from raw.events").fetchall()
    assert got == [(event["id"], "Math", None)]
