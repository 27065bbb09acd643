"""Property: for a generated simulator world, written into a real lake the way a first sync (and a
resync after a gap) leaves it, the current tables equal the simulator's truth, and the as-of state
at 50 random instants inside the retained event window equals the truth at those instants."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import duckdb
import orjson
import pytest
from test_warehouse_support import write_baseline, write_lake_events

from clever_elt import spec
from clever_elt.lake.layout import Lake
from clever_elt.simulator import Simulator
from clever_elt.warehouse import Warehouse, checks
from clever_elt.warehouse.runner import macro_statements

INSTANTS = 50
PAGE = 1000


def sync(lake: Lake, sim: Simulator, taken: str, resync_after: str | None = None) -> None:
    """What extraction leaves in the lake at `sim.now`: a baseline, then every retained event."""
    retained = sim.served_events()[sim.first_retained_index :]
    write_baseline(
        lake,
        {rt: list(sim.truth.current(rt).values()) for rt in spec.record_types()},
        taken=taken,
        anchor_event_id=sim.newest_event_id,
        reason="resync" if resync_after else "initial",
        first_retained_event_id=retained[0]["id"] if resync_after else None,
        lost_cursor=resync_after,
        district=sim.district_id,
    )
    for start in range(0, len(retained), PAGE):
        write_lake_events(lake, retained[start : start + PAGE], district=sim.district_id)


class Typer:
    """Types truth records with the warehouse's own spec-derived macros (in memory)."""

    def __init__(self, warehouse: Warehouse):
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(macro_statements(warehouse.sql_dir / "macros.sql"))

    def typed(self, record_type: str, states: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The typed columns of each record, in order (one query: the macros are large)."""
        if not states:
            return []
        relation = self.con.sql(
            f"""
            select unnest(case when clever_suspect_{record_type}(parsed)
                then clever_exact_{record_type}(state) else parsed end)
            from (
                select position, state, clever_parse_{record_type}(state) as parsed
                from (
                    select unnest(range(len($states))) as position,
                        unnest($states)::json as state
                )
            )
            order by position
            """,
            params={"states": [orjson.dumps(r).decode() for r in states]},
        )
        return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]


def ours_at(
    con: duckdb.DuckDBPyConnection, record_type: str, instant: datetime | None
) -> dict[str, dict]:
    """Our state of a record type at an instant (DESIGN.md's as-of rule), or now (current)."""
    if instant is None:
        relation = con.sql(f"select * from clever.{record_type}_current")
    else:
        relation = con.sql(
            f"""
            select * from clever.{record_type}_history
            where (valid_from is null or valid_from <= $t)
                and (valid_to is null or valid_to > $t)
                and not is_deleted
            """,
            params={"t": instant},
        )
    return {row[0]: dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()}


def agrees(ours: Any, truth: Any, rebuilt: bool) -> bool:
    """Equal; a rebuilt state may also hold values an update added (not in previous_attributes)."""
    if isinstance(ours, str) and isinstance(truth, str) and truth.startswith("{"):
        ours, truth = orjson.loads(ours), orjson.loads(truth)  # JSON columns such as ext
    if isinstance(truth, dict) and isinstance(ours, dict):
        return all(agrees(ours.get(k), v, rebuilt) for k, v in truth.items()) and (
            rebuilt or all(truth.get(k) is not None or v is None for k, v in ours.items())
        )
    if rebuilt and truth is None:
        return True
    return ours == truth


def unknowable(sim: Simulator, retained: list[dict[str, Any]]) -> dict[str, datetime]:
    """Objects whose first retained event creates them, with that event's time.

    Before it, nothing in the lake says whether the object lived (a re-share of a live object,
    or one restored after a delete the lake never saw): as-of states there leave them out.
    """
    first: dict[str, dict[str, Any]] = {}
    for event in retained:
        first.setdefault(event["data"]["object"]["id"], event)
    return {
        object_id: created(event)
        for object_id, event in first.items()
        if event["type"].endswith(".created")
    }


def assert_states_equal_truth(
    warehouse: Warehouse,
    typer: Typer,
    sim: Simulator,
    moments: list[datetime | None],
    unknown: dict[str, datetime],
    resumed_at: datetime | None = None,
) -> None:
    """Our state equals the truth at every moment (None: now, from the current tables)."""
    with warehouse.connect(read_only=True) as con:
        for record_type in spec.record_types():
            assert_type_equals_truth(con, typer, sim, record_type, moments, unknown, resumed_at)


def assert_type_equals_truth(
    con: duckdb.DuckDBPyConnection,
    typer: Typer,
    sim: Simulator,
    record_type: str,
    moments: list[datetime | None],
    unknown: dict[str, datetime],
    resumed_at: datetime | None,
) -> None:
    truths = [sim.truth.current(record_type, at=moment) for moment in moments]
    typed = iter(typer.typed(record_type, [r for t in truths for r in t.values()]))
    for moment, truth in zip(moments, truths, strict=True):
        expected = {object_id: next(typed) for object_id in truth}
        ours = ours_at(con, record_type, moment)
        if moment is not None:
            hidden = {k for k, t in unknown.items() if t > moment}
            expected = {k: v for k, v in expected.items() if k not in hidden}
            ours = {k: v for k, v in ours.items() if k not in hidden}
        assert sorted(ours) == sorted(expected), (record_type, moment)
        for object_id, fields in expected.items():
            assert_row_equals(ours[object_id], fields, (record_type, moment, object_id), resumed_at)


def assert_row_equals(
    row: dict[str, Any], expected: dict[str, Any], where: tuple, resumed_at: datetime | None
) -> None:
    rebuilt = row["_change"] in ("reconstructed", "resync")
    got = {k: row[k] for k in expected}
    # last_modified is never in previous_attributes: it is unknown in a state rebuilt from an
    # update, and a version from before a gap cannot know it changed unseen (nothing else did,
    # or the resync would have opened a new version).
    started = row["valid_from"] if "valid_from" in row else row["_updated_at"]
    crossed_gap = resumed_at is not None and (started or resumed_at) < resumed_at
    if (rebuilt and got.get("last_modified", "absent") is None) or crossed_gap:
        got.pop("last_modified", None)
        expected = {k: v for k, v in expected.items() if k != "last_modified"}
    assert agrees(got, expected, rebuilt), (*where, row["_change"])


def assert_checks_pass(warehouse: Warehouse) -> None:
    with warehouse.connect(read_only=True) as con:
        for model in warehouse.models():
            for name, check in checks.checks_for(model).items():
                outcome = check(con)
                assert outcome.passed or name == "fields_in_spec", (model.name, name, outcome)


def instants(rng: random.Random, start: datetime, end: datetime) -> list[datetime]:
    span = (end - start).total_seconds()
    return sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(INSTANTS))


def created(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["created"].replace("Z", "+00:00"))


@pytest.mark.parametrize("previous_attributes_at", ["data", "top"])
def test_first_sync_history_equals_truth_now_and_at_random_instants(
    tmp_path, previous_attributes_at
):
    sim = Simulator(seed=3, scale="tiny", previous_attributes_at=previous_attributes_at)
    lake = Lake(tmp_path / "lake")
    sync(lake, sim, taken="20260908T000000000000Z")
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", lake.root, tmp_path / "compiled")
    warehouse.load()
    warehouse.build()

    retained = sim.served_events()[sim.first_retained_index :]
    moments = [None, *instants(random.Random(7), created(retained[0]), sim.now)]
    assert_states_equal_truth(warehouse, Typer(warehouse), sim, moments, unknowable(sim, retained))
    assert_checks_pass(warehouse)


def test_history_across_a_gap_equals_truth_on_both_sides(tmp_path):
    sim = Simulator(seed=5, scale="tiny")
    sim.set_now(sim.start + timedelta(days=6))
    lake = Lake(tmp_path / "lake")
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", lake.root, tmp_path / "compiled")
    typer = Typer(warehouse)
    rng = random.Random(11)

    sync(lake, sim, taken="20260807T000000000000Z")
    before_gap = sim.served_events()[sim.first_retained_index :]
    before_moments = instants(rng, created(before_gap[0]), sim.now)
    lost_cursor = sim.newest_event_id
    warehouse.load()
    warehouse.build()
    assert_states_equal_truth(warehouse, typer, sim, [None], {})

    # Thirty-odd days without a sync: the cursor expired and the events in between are gone.
    sim.set_now(sim.now + timedelta(days=33))
    after_gap = sim.served_events()[sim.first_retained_index :]
    assert after_gap[0]["id"] > lost_cursor
    sync(lake, sim, taken="20260909T000000000000Z", resync_after=lost_cursor)
    warehouse.load()
    warehouse.build()

    after_moments = instants(rng, created(after_gap[0]), sim.now)
    assert_states_equal_truth(warehouse, typer, sim, before_moments, unknowable(sim, before_gap))
    assert_states_equal_truth(
        warehouse,
        typer,
        sim,
        [None, *after_moments],
        unknowable(sim, after_gap),
        resumed_at=created(after_gap[0]),
    )
    assert_checks_pass(warehouse)
