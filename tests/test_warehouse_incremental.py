"""Incremental builds: after every load of a sequence, each table built id by id equals the same
table rebuilt in full from the same lake (deletes, re-creates, reconstructions, baselines, a resync
after a gap), and only the ids of new events are recomputed, unless a model's SQL changed."""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta

import duckdb
from test_history_property import sync
from test_history_scenarios import course, eid, event
from test_warehouse_support import write_baseline, write_lake_events

from clever_elt.lake.layout import Lake
from clever_elt.simulator import Simulator
from clever_elt.warehouse import DEFAULT_SQL_DIR, Warehouse, runner


def tables(warehouse: Warehouse) -> dict[str, list[tuple]]:
    """Every materialized model's rows, in a stable order."""
    with warehouse.connect(read_only=True) as con:
        return {
            model.name: sorted(
                con.sql(f"select * from {model.name}").fetchall(), key=lambda row: repr(row)
            )
            for model in warehouse.models()
            if model.kind != "view"
        }


class Pair:
    """One lake, two warehouses: one built incrementally, one rebuilt in full after each load."""

    def __init__(self, tmp_path):
        self.lake = Lake(tmp_path / "lake")
        self.incremental = Warehouse(tmp_path / "inc.duckdb", self.lake.root, tmp_path / "c1")
        self.full = Warehouse(tmp_path / "full.duckdb", self.lake.root, tmp_path / "c2")

    def build(self) -> dict:
        self.incremental.load()
        results = self.incremental.build()
        self.full.load()
        self.full.build(full_refresh=True)
        assert tables(self.incremental) == tables(self.full)
        return results


def test_incremental_build_equals_full_rebuild_after_every_scenario_load(tmp_path):
    pair = Pair(tmp_path)
    math, art = course("Math"), {**course("Art"), "id": "c2"}
    steps = [
        [event(0, "courses.created", math), event(1, "courses.created", art)],
        [event(60, "courses.updated", course("Algebra"), {"name": "Math"})],
        # c3's first news is an update: it gets a reconstructed version.
        [event(70, "courses.updated", {**course("Bio"), "id": "c3"}, {"name": "Chem"})],
        [event(80, "courses.deleted", art)],
        [event(90, "courses.created", {**art, "name": "Art again"})],
        [event(95, "courses.updated", course("Geometry"), {"name": "Math"})],  # missed events
    ]
    for number, events in enumerate(steps):
        write_lake_events(pair.lake, events)
        results = pair.build()
        if number:
            assert results["clever.courses_history"].changed_ids == 1, number
            assert results["clever.users_history"].changed_ids == 0, number

    write_baseline(
        pair.lake,
        {"courses": [course("Geometry"), {**course("Only in baseline"), "id": "c9"}]},
        taken="20240902T080000000000Z",
        anchor_event_id=eid(95),
    )
    results = pair.build()  # a new baseline touches every id: a full build
    assert results["clever.courses_history"].changed_ids is None
    write_lake_events(pair.lake, [event(100, "courses.updated", {**course("X"), "id": "c9"})])
    assert pair.build()["clever.courses_history"].changed_ids == 1


def test_incremental_build_equals_full_rebuild_over_a_simulated_district_with_a_gap(tmp_path):
    sim = Simulator(seed=5, scale="tiny")
    sim.set_now(sim.start + timedelta(days=6))
    pair = Pair(tmp_path)
    sync(pair.lake, sim, taken="20260807T000000000000Z")
    pair.build()
    written = {e["id"] for e in sim.served_events()}
    for _ in range(3):
        sim.advance(events=150)
        new = [e for e in sim.served_events() if e["id"] not in written]
        written |= {e["id"] for e in new}
        write_lake_events(pair.lake, new, district=sim.district_id)
        assert pair.build()["clever.users_history"].changed_ids is not None

    lost_cursor = sim.newest_event_id
    sim.set_now(sim.now + timedelta(days=33))
    sync(pair.lake, sim, taken="20260909T000000000000Z", resync_after=lost_cursor)
    pair.build()
    written = {e["id"] for e in sim.served_events()}
    sim.advance(events=150)
    new = [e for e in sim.served_events() if e["id"] not in written]
    write_lake_events(pair.lake, new, district=sim.district_id)
    assert pair.build()["clever.users_history"].changed_ids is not None


def test_explicit_full_refresh_rebuilds_every_table(tmp_path):
    pair = Pair(tmp_path)
    write_lake_events(pair.lake, [event(0, "courses.created", course("Math"))])
    pair.build()
    results = pair.incremental.build(full_refresh=True)
    assert all(r.changed_ids is None for r in results.values())


def test_changed_model_sql_rebuilds_that_model_in_full(tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(DEFAULT_SQL_DIR, sql_dir)
    lake = Lake(tmp_path / "lake")
    write_lake_events(lake, [event(0, "courses.created", course("Math"))])
    Warehouse(tmp_path / "w.duckdb", lake.root, tmp_path / "c", sql_dir).load()
    Warehouse(tmp_path / "w.duckdb", lake.root, tmp_path / "c", sql_dir).build()
    current = sql_dir / "clever" / "{record_type}_current.sql"
    current.write_text(current.read_text().replace("where is_current", "where is_current = true"))
    write_lake_events(lake, [event(60, "courses.updated", course("Algebra"), {"name": "Math"})])
    warehouse = Warehouse(tmp_path / "w.duckdb", lake.root, tmp_path / "c", sql_dir)
    warehouse.load()
    results = warehouse.build()
    assert results["clever.courses_current"].changed_ids is None
    assert results["clever.courses_history"].changed_ids == 1


def test_a_build_that_runs_out_of_memory_is_retried_in_smaller_batches(
    tmp_path, monkeypatch, caplog
):
    """DuckDB cannot spill everything: a build too large for its memory limit fails, and the model
    is rolled back and built again by id range in batches, then in smaller batches, to the same
    tables."""
    pair = Pair(tmp_path)
    courses = [{**course(f"Course {n}"), "id": f"c{n:02}"} for n in range(20)]
    write_lake_events(pair.lake, [event(n, "courses.created", c) for n, c in enumerate(courses)])
    monkeypatch.setattr(runner, "BATCH_SOURCE_ROWS", 40)
    build_all = runner._build_all

    def scarce_memory(con, model, increment, statements, sql_path, batch_rows, watermark):
        build_all(con, model, increment, statements, sql_path, batch_rows, watermark)
        if model.name == "clever.courses_history" and (batch_rows is None or batch_rows > 10):
            raise duckdb.OutOfMemoryException("Out of Memory Error: a batch too large (test)")

    monkeypatch.setattr(runner, "_build_all", scarce_memory)
    with caplog.at_level(logging.WARNING, logger=runner.__name__):
        results = pair.build()
    assert "clever.courses_history ran out of memory: again in batches of 40" in caplog.text
    assert "clever.courses_history ran out of memory: again in batches of 10" in caplog.text
    assert results["clever.courses_history"].rows == 20


def test_an_incremental_batch_replaces_only_the_rows_that_differ(tmp_path):
    """A new update of c1 adds c1's new state and version; the rows of its earlier events come out
    the same and are left alone, while the formerly open version (closed now) is replaced."""
    pair = Pair(tmp_path)
    write_lake_events(
        pair.lake,
        [
            event(0, "courses.created", course("Math")),
            event(60, "courses.updated", course("Algebra"), {"name": "Math"}),
        ],
    )
    pair.build()
    write_lake_events(
        pair.lake, [event(120, "courses.updated", course("Geometry"), {"name": "Algebra"})]
    )
    pair.incremental.load()
    replaced, computed = {}, {}
    with pair.incremental.connect() as con:
        for model in pair.incremental.models():
            if model.record_type == "courses" and model.kind != "view":
                result = pair.incremental.materialize(model, con)
                assert result.changed_ids == 1, model.name
                replaced[model.name] = con.sql(
                    f"select * from {runner._DIFFERING} order by all"
                ).fetchall()
                computed[model.name] = con.sql(f"select count(*) from {runner._ROWS}").fetchall()
    assert replaced["staging.courses_states"] == [("c1", eid(120))]
    assert replaced["staging.courses_versions"] == [("c1", eid(120) + "1")]
    assert replaced["clever.courses_history"] == [("c1", 2), ("c1", 3)]  # 2 closed, 3 opened
    assert replaced["clever.courses_current"] == [("c1",)]
    # States are appended: only the new event's is computed; versions are computed for the id.
    assert computed["staging.courses_states"] == [(1,)]
    assert computed["staging.courses_versions"] == [(3,)]
    pair.full.load()
    pair.full.build(full_refresh=True)
    assert tables(pair.incremental) == tables(pair.full)


def test_a_large_incremental_batch_replaces_every_row_of_its_ids(tmp_path, monkeypatch):
    """Past `COMPARED_ROWS` computed rows, a batch deletes and inserts all its ids' rows instead of
    comparing them (the comparison would not fit in memory): the tables come out the same."""
    monkeypatch.setattr(runner, "COMPARED_ROWS", -1)  # every batch is too large, even an empty one
    pair = Pair(tmp_path)
    write_lake_events(pair.lake, [event(0, "courses.created", course("Math"))])
    pair.build()
    write_lake_events(
        pair.lake,
        [
            event(60, "courses.updated", course("Algebra"), {"name": "Math"}),
            event(70, "courses.created", {**course("Art"), "id": "c2"}),
        ],
    )
    pair.incremental.load()
    with pair.incremental.connect() as con:
        for model in pair.incremental.models():
            if model.record_type == "courses" and model.kind != "view":
                assert pair.incremental.materialize(model, con).changed_ids == 2, model.name
        # Nothing was compared on this connection.
        assert not con.sql(
            f"select * from duckdb_tables() where table_name = '{runner._DIFFERING}'"
        ).fetchall()
    pair.build()  # the other models, then the comparison with a full rebuild
