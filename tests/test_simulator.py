"""The simulator over real HTTP: envelope, paging, filters, retention, auth, limits, clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from clever_elt.simulator import Faults, Simulator

TOKEN = "TEST_TOKEN"


@pytest.fixture
def http(sim_server):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    yield session
    session.close()


def get(http, server, path, **params):
    response = http.get(server.base_url + path, params=params, timeout=10)
    return response


def links(body):
    return {link["rel"]: link["uri"] for link in body["links"]}


def pull_all(http, server, path="/events", **params):
    """Follow `next` links from the first page; returns (items, requested URIs)."""
    response = get(http, server, path, **params)
    items, uris = [], [response.url]
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["data"]
        nxt = links(body).get("next")
        if not nxt or not body["data"]:
            return items, uris
        uris.append(nxt)
        response = http.get(server.url + nxt, timeout=10)


def retained(sim):
    return sim.timeline.ids[sim.first_retained_index : sim.visible_events]


@pytest.mark.parametrize("limit", [1, 7, 100, 999, 10000])
def test_paging_visits_every_retained_event_once_in_id_order(sim_server, http, limit):
    sim = sim_server.simulator
    if limit == 1:
        sim.set_now(sim.start + timedelta(hours=12))  # only the first sync: a short walk
    items, _ = pull_all(http, sim_server, limit=limit)
    ids = [item["data"]["id"] for item in items]
    assert ids == retained(sim)
    assert all(item["uri"] == f"/v3.1/events/{item['data']['id']}" for item in items)


def test_links_are_relative_and_carry_limit_and_cursor(sim_server, http):
    body = get(http, sim_server, "/events", limit=5).json()
    found = links(body)
    assert found["self"] == "/v3.1/events?limit=5"
    first, last = body["data"][0]["data"]["id"], body["data"][-1]["data"]["id"]
    assert found["prev"] == f"/v3.1/events?limit=5&ending_before={first}"
    assert found["next"] == f"/v3.1/events?limit=5&starting_after={last}"


def test_end_of_stream_is_empty_page_with_prev_and_no_next(sim_server, http):
    newest = sim_server.simulator.newest_event_id
    body = get(http, sim_server, "/events", limit=1, starting_after=newest).json()
    assert body["data"] == []
    assert links(body) == {
        "self": f"/v3.1/events?limit=1&starting_after={newest}",
        "prev": f"/v3.1/events?limit=1&ending_before={newest}",
    }


def test_default_limit_is_100(sim_server, http):
    body = get(http, sim_server, "/events").json()
    assert len(body["data"]) == 100


def test_ending_before_last_gives_newest_event(sim_server, http):
    body = get(http, sim_server, "/events", ending_before="last", limit=1).json()
    assert [item["data"]["id"] for item in body["data"]] == [sim_server.simulator.newest_event_id]


def test_ending_before_id_gives_the_events_just_before_it_oldest_first(sim_server, http):
    ids = retained(sim_server.simulator)
    body = get(http, sim_server, "/events", ending_before=ids[50], limit=10).json()
    assert [item["data"]["id"] for item in body["data"]] == ids[40:50]


def test_limit_above_10000_is_413_with_json_message(sim_server, http):
    response = get(http, sim_server, "/events", limit=10001)
    assert response.status_code == 413
    assert "message" in response.json()


def test_missing_or_wrong_token_is_401_with_json_message(sim_server):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        response = requests.get(sim_server.base_url + "/events", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["message"]


def test_expired_cursor_is_answered_silently_from_oldest_retained(sim_server, http):
    sim = sim_server.simulator
    purged = sim.timeline.ids[0]
    assert sim.first_retained_index > 0
    body = get(http, sim_server, "/events", starting_after=purged, limit=3).json()
    assert [item["data"]["id"] for item in body["data"]] == retained(sim)[:3]
    assert get(http, sim_server, f"/events/{purged}").status_code == 404


def test_single_event_has_event_and_self_link(sim_server, http):
    event_id = retained(sim_server.simulator)[10]
    body = get(http, sim_server, f"/events/{event_id}").json()
    assert body["data"]["id"] == event_id
    assert body["links"] == [{"rel": "self", "uri": f"/v3.1/events/{event_id}"}]


def test_advancing_the_clock_reveals_new_events(sim_server, http):
    sim = sim_server.simulator
    newest = sim.newest_event_id
    assert get(http, sim_server, "/events", starting_after=newest).json()["data"] == []
    sim.advance(events=5)
    body = get(http, sim_server, "/events", starting_after=newest).json()
    assert [item["data"]["id"] for item in body["data"]] == sim.timeline.ids[
        sim.visible_events - 5 : sim.visible_events
    ]
    assert sim.now == datetime.fromtimestamp(sim.timeline.created[sim.visible_events - 1], UTC)


def test_same_seed_gives_same_bytes_and_other_seed_differs():
    a, b, c = Simulator(seed=5), Simulator(seed=5), Simulator(seed=6)
    assert a.timeline.items == b.timeline.items
    assert a.timeline.initial == b.timeline.initial
    assert a.timeline.items != c.timeline.items


def test_faults_are_seeded_and_replayable(simulator):
    def statuses():
        simulator.faults = Faults(rate_429=0.2, rate_5xx=0.2, rate_truncated=0.2, seed=3)
        auth = f"Bearer {TOKEN}"
        return [simulator.respond("GET", "/v3.1/events", auth).status for _ in range(50)]

    first = statuses()
    assert first == statuses()
    assert {200, 429} <= set(first)
    assert set(first) & {500, 502, 503, 504}


def test_next_link_keeps_record_type_filters(sim_server, http):
    body = get(http, sim_server, "/events", limit=2, record_type=["users", "sections"]).json()
    query = parse_qs(urlsplit(links(body)["next"]).query)
    assert query["record_type"] == ["users", "sections"]
    assert {item["data"]["type"].split(".")[0] for item in body["data"]} <= {"users", "sections"}
