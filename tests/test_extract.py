"""Extraction runs against the simulator over real HTTP into a real Parquet lake: first run,
incremental runs, an expired cursor, faults, both places of previous_attributes, interrupted runs.
The lake is compared with what the simulator served and with its true current state."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import duckdb
import orjson
import pytest

from clever_elt import spec
from clever_elt.api import CleverClient
from clever_elt.extract import extract
from clever_elt.lake.layout import Lake
from clever_elt.lake.snapshots import baseline_manifests
from clever_elt.simulator import Faults, Simulator


def lake_events(lake: Lake) -> dict[str, dict]:
    """Every event in the lake by id; fails on a duplicate."""
    glob = lake.events_dir / "**" / "*.parquet"
    rows = (
        duckdb.connect()
        .sql(f"select event_id, raw, problem from read_parquet('{glob}') order by event_id")
        .fetchall()
    )
    by_id = {event_id: orjson.loads(raw) for event_id, raw, _ in rows}
    assert len(by_id) == len(rows), "an event is in the lake twice"
    assert all(problem is None for _, _, problem in rows)
    return by_id


def baseline_records(lake: Lake, record_type: str, district: str, taken: str) -> dict[str, dict]:
    glob = lake.snapshot_dir(record_type, district, taken) / "*.parquet"
    rows = duckdb.connect().sql(f"select object_id, raw from read_parquet('{glob}')").fetchall()
    return {object_id: orjson.loads(raw) for object_id, raw in rows}


def retained_events(simulator: Simulator) -> dict[str, dict]:
    oldest = simulator.oldest_retained_event_id
    return {e["id"]: e for e in simulator.served_events() if e["id"] >= oldest}


def assert_baseline_is_the_truth(lake: Lake, simulator: Simulator, at=None) -> None:
    """The newest complete baseline holds exactly the live records at `at` (default: now)."""
    manifest = baseline_manifests(lake, simulator.district_id)[-1]
    for record_type in spec.record_types():
        truth = simulator.truth.current(record_type, at)
        got = baseline_records(lake, record_type, simulator.district_id, manifest.taken)
        assert got == truth, record_type
        assert manifest.counts[record_type] == len(truth)


@pytest.fixture
def received(simulator):
    """Query of every /events list request the simulator answered."""
    log = []
    respond = simulator.respond

    def recording(method, target, authorization):
        split = urlsplit(target)
        if split.path == "/v3.1/events":
            log.append(parse_qs(split.query))
        return respond(method, target, authorization)

    simulator.respond = recording
    return log


@pytest.fixture
def client(sim_server):
    with CleverClient(sim_server.base_url, "TEST_TOKEN", page_size=400, sleep=lambda s: None) as c:
        yield c


def test_first_run_takes_a_baseline_then_pulls_every_retained_event(simulator, client, tmp_path):
    lake = Lake(tmp_path)
    pages_seen = []
    result = extract(client, lake, progress=lambda pages, events: pages_seen.append(pages))

    served = retained_events(simulator)
    assert lake_events(lake) == served
    assert result.baseline.reason == "initial"
    assert result.baseline.anchor_event_id == simulator.newest_event_id
    assert_baseline_is_the_truth(lake, simulator)
    assert (result.cursor_before, result.cursor_after) == (None, simulator.newest_event_id)
    assert result.events_written == sum(result.counts.values()) == len(served)
    assert result.counts[("users", "updated")] == sum(
        e["type"] == "users.updated" for e in served.values()
    )
    assert (result.problems, result.gap) == (0, False)
    assert result.files_written == len(list(tmp_path.glob("**/*.parquet")))
    assert result.bytes_written == sum(p.stat().st_size for p in tmp_path.glob("**/*.parquet"))
    assert pages_seen == list(range(1, result.pages + 1))


def test_incremental_run_pulls_only_events_after_the_cursor(simulator, client, tmp_path, received):
    lake = Lake(tmp_path)
    first = extract(client, lake)
    before = lake_events(lake)
    simulator.advance(events=700)
    received.clear()
    second = extract(client, lake)

    assert received[0]["starting_after"] == [first.cursor_after]
    new = {i: e for i, e in retained_events(simulator).items() if i > first.cursor_after}
    assert second.events_written == len(new) > 0
    assert second.baseline is None and not second.gap
    assert (second.cursor_before, second.cursor_after) == (first.cursor_after, max(new))
    assert lake_events(lake) == before | retained_events(simulator)


def test_a_run_with_nothing_new_writes_nothing(client, tmp_path):
    lake = Lake(tmp_path)
    first = extract(client, lake)
    files = sorted(tmp_path.glob("**/*"))
    again = extract(client, lake)

    assert (again.events_written, again.files_written, again.baseline) == (0, 0, None)
    assert again.cursor_after == again.cursor_before == first.cursor_after
    assert sorted(tmp_path.glob("**/*")) == files


def test_an_expired_cursor_is_a_visible_gap_and_triggers_a_resync(
    simulator, client, tmp_path, caplog
):
    lake = Lake(tmp_path)
    first = extract(client, lake)
    before = lake_events(lake)
    simulator.advance(seconds=timedelta(days=31).total_seconds())
    with caplog.at_level(logging.WARNING, logger="clever_elt.extract"):
        second = extract(client, lake)

    assert second.gap
    assert second.baseline.reason == "resync"
    assert second.baseline.lost_cursor == first.cursor_after
    assert second.baseline.first_retained_event_id == simulator.oldest_retained_event_id
    assert second.baseline.first_retained_event_id > first.cursor_after
    assert any(
        "GAP" in r.getMessage() and first.cursor_after in r.getMessage() for r in caplog.records
    )
    assert_baseline_is_the_truth(lake, simulator)
    # Events from before the gap stay; every event still retained is pulled.
    assert lake_events(lake) == before | retained_events(simulator)
    assert [m.reason for m in baseline_manifests(lake)] == ["initial", "resync"]

    third = extract(client, lake)
    assert not third.gap and third.events_written == 0


def test_every_fault_kind_during_a_sync_loses_and_duplicates_nothing(simulator, client, tmp_path):
    simulator.faults = Faults(
        rate_429=0.1, rate_5xx=0.1, rate_slow=0.03, slow_seconds=0.3, rate_truncated=0.15, seed=11
    )
    client.timeout = (2, 0.2)
    lake = Lake(tmp_path)
    extract(client, lake)
    first_served, first_now = retained_events(simulator), simulator.now
    assert lake_events(lake) == first_served
    assert_baseline_is_the_truth(lake, simulator, at=first_now)

    simulator.advance(events=500)
    extract(client, lake)
    assert lake_events(lake) == first_served | retained_events(simulator)


@pytest.mark.parametrize("place", ["data", "top"])
def test_previous_attributes_are_kept_at_either_place(place, tmp_path):
    simulator = Simulator(seed=2, scale="tiny", token="T", previous_attributes_at=place)
    with simulator.serve() as server, CleverClient(server.base_url, "T") as client:
        extract(client, Lake(tmp_path))

    events = lake_events(Lake(tmp_path))
    assert events == retained_events(simulator)
    updates = [e for e in events.values() if e["type"].endswith(".updated")]
    placed = {
        "top": ["previous_attributes" in e for e in updates],
        "data": ["previous_attributes" in e["data"] for e in updates],
    }
    other = "data" if place == "top" else "top"
    assert updates and all(placed[place]) and not any(placed[other])


class Interrupted(Exception):
    pass


def interrupt_at(page: int, *, events: bool):
    def progress(pages: int, written: int) -> None:
        if pages == page and bool(written) == events:
            raise Interrupted

    return progress


def test_a_run_interrupted_mid_baseline_leaves_no_baseline_and_the_next_run_redoes_it(
    simulator, client, tmp_path
):
    lake = Lake(tmp_path)
    with pytest.raises(Interrupted):
        extract(client, lake, progress=interrupt_at(3, events=False))
    assert baseline_manifests(lake) == [] and lake.cursor(simulator.district_id) is None

    result = extract(client, lake)
    assert result.baseline.reason == "initial"
    assert [m.taken for m in baseline_manifests(lake)] == [result.baseline.taken]
    assert_baseline_is_the_truth(lake, simulator)
    assert lake_events(lake) == retained_events(simulator)


def test_a_run_interrupted_while_pulling_resumes_after_its_last_committed_page(
    simulator, client, tmp_path, received
):
    lake = Lake(tmp_path)
    with pytest.raises(Interrupted):
        extract(client, lake, progress=interrupt_at(11, events=True))
    cursor = lake.cursor(simulator.district_id)
    assert cursor is not None

    received.clear()
    result = extract(client, lake)
    assert result.baseline is None and not result.gap
    assert received[0]["starting_after"] == [cursor]
    assert lake_events(lake) == retained_events(simulator)


def test_events_that_cannot_be_interpreted_are_kept_flagged_and_counted(
    simulator, client, tmp_path
):
    """The simulator's first events page, with one event retyped to v1.1's `students.updated`
    and one list item without an event spliced in, as a real API might one day send."""
    respond = simulator.respond
    retyped = []

    def with_odd_events(method, target, authorization):
        response = respond(method, target, authorization)
        split = urlsplit(target)
        first_page = split.path == "/v3.1/events" and parse_qs(split.query) == {"limit": ["400"]}
        if first_page and not retyped:
            page = orjson.loads(response.body())
            page["data"][5]["data"]["type"] = "students.updated"
            page["data"].insert(7, {"uri": "/v3.1/events/unknown"})
            retyped.append(page["data"][5]["data"])
            response.parts = [orjson.dumps(page)]
        return response

    simulator.respond = with_odd_events
    lake = Lake(tmp_path)
    result = extract(client, lake)

    glob = lake.events_dir / "**" / "*.parquet"
    flagged = (
        duckdb.connect()
        .sql(f"select event_id, type, problem, raw from read_parquet('{glob}') where problem > ''")
        .fetchall()
    )
    assert sorted(flagged, key=str) == sorted(
        [
            (
                retyped[0]["id"],
                "students.updated",
                "unknown event type",
                orjson.dumps(retyped[0]).decode(),
            ),
            (None, None, "list item has no event object", '{"uri":"/v3.1/events/unknown"}'),
        ],
        key=str,
    )
    assert result.problems == 2
    assert result.events_written == len(retained_events(simulator)) + 1
    assert result.counts[("students", "updated")] == 1
