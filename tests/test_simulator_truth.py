"""The generated world and its ground truth: previous_attributes semantics, realism, history."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import orjson
import pytest
import requests

from clever_elt import spec
from clever_elt.simulator import Simulator

ROLES = {"student", "teacher", "staff", "district_admin", "contact"}


def deep_merge(previous, current):
    """Clever's rule: dicts merge recursively; arrays and scalars replace."""
    if isinstance(previous, dict) and isinstance(current, dict):
        merged = dict(current)
        for key, value in previous.items():
            merged[key] = deep_merge(value, current[key]) if key in current else value
        return merged
    return previous


def without_added(merged, before):
    """`merged` minus the keys (at any depth) that `before` did not have: keys an update added."""
    if isinstance(merged, dict) and isinstance(before, dict):
        return {k: without_added(v, before[k]) for k, v in merged.items() if k in before}
    return merged


def without_last_modified(record):
    return {k: v for k, v in record.items() if k != "last_modified"}


def initial_state(sim):
    return {
        object_id: orjson.loads(raw)
        for records in sim.timeline.initial.values()
        for object_id, raw in records.items()
    }


def previous_attributes_of(event):
    return event.get("previous_attributes", event["data"].get("previous_attributes"))


@pytest.fixture(scope="module")
def whole_world():
    """Seed 1, clock after the last event: every event of the timeline is served."""
    sim = Simulator(seed=1, scale="tiny")
    sim.set_now(sim.start + timedelta(days=60))
    return sim, sim.served_events()


@pytest.mark.parametrize(("seed", "where"), [(1, "data"), (2, "data"), (3, "top")])
def test_previous_attributes_merged_onto_object_give_the_previous_version(seed, where):
    sim = Simulator(seed=seed, scale="tiny", previous_attributes_at=where)
    sim.set_now(sim.start + timedelta(days=60))
    state = initial_state(sim)
    checked = with_added_keys = 0
    for event in sim.served_events():
        record = event["data"]["object"]
        if event["type"].endswith(".updated"):
            before = without_last_modified(state[record["id"]])
            rebuilt = without_last_modified(deep_merge(previous_attributes_of(event), record))
            assert without_added(rebuilt, before) == before, event["id"]
            checked += 1
            with_added_keys += rebuilt != before
        state[record["id"]] = record
    assert checked > 1000
    assert with_added_keys > 10  # updates that added keys are part of the world


def test_previous_attributes_follow_clevers_shape_rules(whole_world):
    sim, events = whole_world
    state = initial_state(sim)
    seen = Counter()
    for event in events:
        record = event["data"]["object"]
        before = state.get(record["id"])
        state[record["id"]] = record
        if not event["type"].endswith(".updated"):
            continue
        pa = event["data"]["previous_attributes"]
        assert pa, "an update always names what changed"
        assert "last_modified" not in pa
        for key, old in pa.items():
            assert before.get(key) == old or key in ("roles", "ext"), (key, event["id"])
        if "name" in pa:
            assert pa["name"] == before["name"]  # the whole previous name object
            seen["name"] += 1
        for key in ("roles", "ext"):
            if key in pa:
                # sparse: every reported leaf differs from (or is missing in) the new record
                for path, old in leaves(pa[key]):
                    assert lookup(record[key], path) != old, (key, path, event["id"])
                    seen[key] += 1
        if "students" in pa:
            assert pa["students"] == before["students"]  # the whole previous array
            seen["students"] += 1
        if record.get("last_modified") != before.get("last_modified"):
            seen["last_modified changed"] += 1
        if before.get("last_modified") == record.get("last_modified") and "last_modified" in record:
            seen["last_modified unchanged"] += 1
    wanted = ("name", "roles", "ext", "students", "last_modified changed")
    assert all(seen[k] > 3 for k in (*wanted, "last_modified unchanged")), seen


def leaves(node, path=()):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    else:
        yield path, node


_ABSENT = object()


def lookup(node, path):
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _ABSENT
        node = node[key]
    return node


def test_event_ids_are_object_ids_whose_time_is_created_and_ascending(whole_world):
    _, events = whole_world
    ids = [event["id"] for event in events]
    assert ids == sorted(set(ids))
    for event in events:
        second = int(event["id"][:8], 16)
        created = datetime.strptime(event["created"], "%Y-%m-%dT%H:%M:%S.000Z")
        assert second == int(created.replace(tzinfo=UTC).timestamp())
        assert event["type"] in spec.event_types()


def test_world_has_the_quirks_of_real_rosters(whole_world):
    sim, events = whole_world
    initial = initial_state(sim)
    users = [r for r in initial.values() if "roles" in r and "district" in r]
    assert {role for user in users for role in user["roles"]} == ROLES
    assert any("email" not in user for user in users)  # omitted, not null
    assert any(len(user["roles"]) > 1 for user in users)
    text = orjson.dumps(list(initial.values())).decode()
    assert '""' in text and "null" in text and '"ext":' in text
    assert any(not name.isascii() for user in users for name in user["name"].values())

    per_second = Counter(event["created"] for event in events)
    assert max(per_second.values()) >= 50
    assert {event["type"].split(".")[0] for event in events} == set(spec.record_types())
    assert {event["type"].split(".")[1] for event in events} == {"created", "updated", "deleted"}

    versions = Counter(event["data"]["object"]["id"] for event in events)
    assert max(versions.values()) >= 30  # objects with many versions

    live, deleted = set(initial), set()
    recreated = created_while_live = 0
    for event in events:
        object_id, action = event["data"]["object"]["id"], event["type"].split(".")[1]
        if action == "created":
            recreated += object_id in deleted
            created_while_live += object_id in live
            live.add(object_id)
            deleted.discard(object_id)
        elif action == "deleted":
            live.discard(object_id)
            deleted.add(object_id)
    assert recreated >= 3 and created_while_live >= 3


def replay(sim, until_second):
    """State per record type from the initial world and the served events with created <= T."""
    state = {rt: {i: orjson.loads(raw) for i, raw in recs.items()} for rt, recs in
             sim.timeline.initial.items()}  # fmt: skip
    for event in sim.served_events():
        created = datetime.strptime(event["created"], "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=UTC)
        if created.timestamp() > until_second:
            break
        record_type, action = event["type"].split(".")
        record = event["data"]["object"]
        if action == "deleted":
            state[record_type].pop(record["id"], None)
        else:
            state[record_type][record["id"]] = record
    return state


def test_truth_current_is_the_replay_of_served_events(simulator):
    created = simulator.timeline.created
    mid_burst = created[simulator.visible_events // 2]
    for when in (simulator.start - timedelta(days=1), simulator.now):
        expected = replay(simulator, when.timestamp())
        for record_type in spec.record_types():
            assert simulator.truth.current(record_type, at=when) == expected[record_type]
    at = datetime.fromtimestamp(mid_burst, UTC)
    expected = replay(simulator, mid_burst)
    for record_type in spec.record_types():
        assert simulator.truth.current(record_type, at=at) == expected[record_type]
        assert simulator.truth.current(record_type) == simulator.truth.current(
            record_type, at=simulator.now + timedelta(days=300)
        )


def test_truth_only_knows_events_that_exist_yet(simulator):
    newest = simulator.newest_event_id
    before = simulator.truth.current("users")
    simulator.advance(events=1)
    changed = simulator.timeline.event(simulator.visible_events - 1)
    assert changed["id"] > newest
    if changed["type"].startswith("users."):
        assert simulator.truth.current("users") != before


def test_truth_versions_chain_without_gaps_and_match_events(whole_world):
    sim, events = whole_world
    for record_type in spec.record_types():
        chains = defaultdict(list)
        for version in sim.truth.versions(record_type):
            chains[version.id].append(version)
        events_of = defaultdict(list)
        for event in events:
            if event["type"].startswith(record_type + "."):
                events_of[event["data"]["object"]["id"]].append(event)
        assert set(chains) == set(sim.timeline.initial[record_type]) | set(events_of)
        for object_id, chain in chains.items():
            initial = object_id in sim.timeline.initial[record_type]
            assert len(chain) == initial + len(events_of[object_id])
            assert (chain[0].valid_from is None) == initial
            for earlier, later in pairwise(chain):
                assert earlier.valid_to == later.valid_from is not None
            assert chain[-1].valid_to is None
            for version, event in zip(chain[initial:], events_of[object_id], strict=True):
                assert version.event_id == event["id"]
                assert version.record == event["data"]["object"]
                assert version.is_deleted == event["type"].endswith(".deleted")
        current = sim.truth.current(record_type)
        assert {i for i, c in chains.items() if not c[-1].is_deleted} == set(current)


def test_data_api_serves_truth_current_for_every_record_type_and_role(sim_server):
    sim = sim_server.simulator
    sim.advance(events=37)  # mid-burst: the Data API follows the clock
    auth = {"Authorization": "Bearer TEST_TOKEN"}
    for record_type in spec.record_types():
        body = requests.get(
            f"{sim_server.base_url}/{record_type}", params={"limit": 10000}, headers=auth
        ).json()
        served = {item["data"]["id"]: item["data"] for item in body["data"]}
        assert served == sim.truth.current(record_type)
        assert list(served) == sorted(served)
    users = sim.truth.current("users")
    for role in sorted(ROLES):
        body = requests.get(
            f"{sim_server.base_url}/users", params={"limit": 10000, "role": role}, headers=auth
        ).json()
        assert [item["data"]["id"] for item in body["data"]] == sorted(
            i for i, user in users.items() if role in user["roles"]
        )


def test_generating_is_deterministic_and_scales():
    a = Simulator(seed=11, scale=500)
    b = Simulator(seed=11, scale=500)
    assert a.timeline.items == b.timeline.items
    assert a.truth.versions("users") == b.truth.versions("users")
    demo = Simulator(seed=11, scale="demo")
    assert 15_000 < len(demo.timeline) < 25_000
    with pytest.raises(ValueError):
        Simulator(scale="galactic")
