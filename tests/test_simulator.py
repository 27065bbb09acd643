"""The simulator over real HTTP: envelope, paging, filters, retention, auth, limits, clock."""

from __future__ import annotations

import socket
import struct
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


def test_school_filter_keeps_events_about_that_school(sim_server, http):
    sim = sim_server.simulator
    school = sorted(sim.truth.current("schools"))[0]
    items, _ = pull_all(http, sim_server, limit=200, school=school)
    assert items
    for item in items:
        event = item["data"]
        record = event["data"]["object"]
        record_type = event["type"].split(".")[0]
        assert record_type in ("schools", "users", "sections")
        if record_type == "schools":
            assert record["id"] == school
        elif record_type == "sections":
            assert record["school"] == school
        else:
            places = [(r.get("school"), *r.get("schools", [])) for r in record["roles"].values()]
            assert any(school in p for p in places)


def test_record_type_filter_pages_through_only_those_types(sim_server, http):
    sim = sim_server.simulator
    items, uris = pull_all(http, sim_server, limit=50, record_type=["sections", "terms"])
    assert len(uris) > 2
    expected = [
        sim.timeline.ids[i]
        for i in range(sim.first_retained_index, sim.visible_events)
        if sim.timeline.event(i)["type"].split(".")[0] in ("sections", "terms")
    ]
    assert [item["data"]["id"] for item in items] == expected


def test_bad_parameters_are_400_with_json_message(sim_server, http):
    for params in (
        {"limit": "x"},
        {"limit": 0},
        {"record_type": "students"},
        {"starting_after": "1"},
    ):
        response = get(http, sim_server, "/events", **params)
        assert response.status_code == 400, params
        assert response.json()["message"]
    assert get(http, sim_server, "/users", role="parent").status_code == 400


def test_data_api_pages_by_starting_after_and_ending_before(sim_server, http):
    sim = sim_server.simulator
    ids = sorted(sim.truth.current("users"))
    items, uris = pull_all(http, sim_server, "/users", limit=40)
    assert [item["data"]["id"] for item in items] == ids
    assert all(uri.startswith("/v3.1/users?limit=40&starting_after=") for uri in uris[1:])
    body = get(http, sim_server, "/users", ending_before=ids[100], limit=10).json()
    assert [item["data"]["id"] for item in body["data"]] == ids[90:100]
    last = get(http, sim_server, "/users", ending_before="last", limit=1).json()
    assert last["data"][0]["data"]["id"] == ids[-1]


def test_every_response_has_rate_limit_headers_and_over_budget_is_429():
    sim = Simulator(seed=1, rate_limit=3, rate_window_seconds=3600)
    with sim.serve() as server, requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        answers = [http.get(server.base_url + "/events?limit=1", timeout=10) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert answers[3].json()["message"]
        for answer in answers:
            assert answer.headers["x-ratelimit-limit"] == "3"
            reset = int(answer.headers["x-ratelimit-reset"])
            assert 0 < reset - datetime.now(UTC).timestamp() <= 3600


def test_truncated_bodies_are_cut_mid_json_both_ways(sim_server, http):
    sim = sim_server.simulator
    seen = set()
    sim.faults = Faults(rate_truncated=1.0, seed=4)
    for _ in range(12):
        try:
            response = get(http, sim_server, "/events", limit=500)
        except requests.exceptions.ChunkedEncodingError:
            seen.add("connection dropped")
            continue
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()
        seen.add("short body")
    assert seen == {"connection dropped", "short body"}
    sim.faults = Faults()
    assert len(get(http, sim_server, "/events", limit=500).json()["data"]) == 500


def test_server_errors_and_429_faults_can_be_switched_on_at_runtime(sim_server, http):
    sim = sim_server.simulator
    sim.faults = Faults(rate_5xx=0.5, rate_429=0.5, seed=1)
    statuses = {get(http, sim_server, "/events").status_code for _ in range(40)}
    assert statuses == {429, 500, 502, 503, 504}


def test_slow_fault_makes_a_short_client_timeout_fire(sim_server, http):
    sim_server.simulator.faults = Faults(rate_slow=1.0, slow_seconds=1.0)
    with pytest.raises(requests.exceptions.Timeout):
        http.get(sim_server.base_url + "/events", timeout=0.2)


def test_admin_endpoints_report_advance_and_show_truth(sim_server):
    sim = sim_server.simulator
    state = requests.get(sim_server.url + "/_sim/state", timeout=10).json()
    assert state["visible_events"] == sim.visible_events
    assert state["newest_event_id"] == sim.newest_event_id
    assert state["district_id"] == sim.district_id
    assert datetime.fromisoformat(state["now"]) == sim.now
    after = requests.post(sim_server.url + "/_sim/advance?events=10", timeout=10).json()
    assert after["visible_events"] == state["visible_events"] + 10 == sim.visible_events
    later = requests.post(sim_server.url + "/_sim/advance?seconds=86400", timeout=10).json()
    assert datetime.fromisoformat(later["now"]) > datetime.fromisoformat(after["now"])
    truth = requests.get(sim_server.url + "/_sim/truth/sections", timeout=10).json()
    assert truth["data"] == list(sim.truth.current("sections").values())
    requests.post(sim_server.url + "/_sim/faults?rate_5xx=1.0&seed=2", timeout=10)
    assert sim.faults == Faults(rate_5xx=1.0, seed=2)


def test_set_now_moves_retention_and_visibility(simulator):
    simulator.set_now(simulator.start + timedelta(days=1))
    assert simulator.first_retained_index == 0
    assert 0 < simulator.visible_events < len(simulator.timeline)
    simulator.set_now(simulator.start + timedelta(days=80))
    assert simulator.visible_events == len(simulator.timeline)
    assert simulator.oldest_retained_event_id is None  # everything purged


def test_large_pages_can_time_out_at_the_gateway_while_small_pages_pass(sim_server, http):
    sim_server.simulator.faults = Faults(rate_504_large_page=1.0)
    big = get(http, sim_server, "/events", limit=10000)
    assert big.status_code == 504
    assert big.headers["Content-Type"].startswith("text/html")
    assert get(http, sim_server, "/events", limit=1000).status_code == 200


def test_a_client_hanging_up_mid_answer_leaves_no_traceback_and_the_server_serving(
    sim_server, capfd
):
    host, port = sim_server.host, sim_server.port
    request = (
        f"GET /v3.1/events?limit=10000 HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {sim_server.simulator.token}\r\n\r\n"
    ).encode()
    for _ in range(5):
        with socket.create_connection((host, port)) as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.sendall(request)
            client.recv(1)  # the answer has begun; closing now resets the connection
    answer = requests.get(
        sim_server.base_url + "/events?limit=5",
        headers={"Authorization": f"Bearer {sim_server.simulator.token}"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert "Traceback" not in capfd.readouterr().err
