"""The Clever client against the simulator over real HTTP: paging, the requests it sends, retries,
rate-limit waits, page-size fallback and clear errors. Backoff sleeps are recorded, not slept."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from clever_elt.api import CleverAuthError, CleverClient, CleverError, CleverUnknownHostError
from clever_elt.envelope import PageDecodeError
from clever_elt.settings import SettingsError
from clever_elt.simulator import Faults, Simulator
from helpers import dns_says_no_such_host


def decode_ids(body: bytes) -> list[str]:
    try:
        return [item["data"]["id"] for item in orjson.loads(body)["data"]]
    except orjson.JSONDecodeError as exc:
        raise PageDecodeError(str(exc)) from exc


@pytest.fixture
def received(simulator):
    """Every API request the simulator answered: (path, query dict, status)."""
    log = []
    respond = simulator.respond

    def recording(method, target, authorization):
        response = respond(method, target, authorization)
        split = urlsplit(target)
        log.append((split.path, parse_qs(split.query), response.status, response.headers))
        return response

    simulator.respond = recording
    return log


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(sim_server, sleeps):
    with CleverClient(sim_server.base_url, "TEST_TOKEN", sleep=sleeps.append) as client:
        yield client


def retained_ids(simulator) -> list[str]:
    oldest = simulator.oldest_retained_event_id
    return [e["id"] for e in simulator.served_events() if e["id"] >= oldest]


def test_paging_visits_every_retained_event_once_in_order(simulator, sim_server, received):
    with CleverClient(sim_server.base_url, "TEST_TOKEN", page_size=500) as client:
        pages = list(client.iter_pages("/events", None, decode_ids))

    assert [i for page in pages for i in page] == retained_ids(simulator)
    queries = [q for path, q, _, _ in received if path == "/v3.1/events"]
    assert queries[0] == {"limit": ["500"]}
    # Each later request continues after the last id of the page before it.
    for query, page in zip(queries[1:], pages, strict=False):
        assert query["starting_after"] == [page[-1]]
        assert query["limit"] == ["500"]
    assert len(queries) == len(pages)  # the last page had no `next`: nothing more was asked


def test_the_cursor_sent_is_the_one_asked_for(simulator, client, received):
    cursor = retained_ids(simulator)[-10]
    pages = list(client.iter_pages("/events", {"starting_after": cursor}, decode_ids))

    assert [i for page in pages for i in page] == retained_ids(simulator)[-9:]
    path, query, status, _ = received[0]
    assert (path, query["starting_after"], query["limit"], status) == (
        "/v3.1/events",
        [cursor],
        ["10000"],
        200,
    )


def test_sync_procedure_lookups(simulator, client):
    ids = retained_ids(simulator)
    assert client.district_id() == simulator.district_id
    assert client.newest_event_id() == ids[-1] == simulator.newest_event_id
    assert client.oldest_event_id() == ids[0] == simulator.oldest_retained_event_id
    assert client.event_exists(ids[5])
    assert not client.event_exists("000000000000000000000000")


def test_a_refused_token_is_one_clear_error_that_never_shows_the_token(sim_server):
    secret = "WRONG_TOKEN_s3cr3t"
    client = CleverClient(sim_server.base_url, secret)
    with pytest.raises(CleverAuthError) as caught:
        client.district_id()
    assert "refused the API token" in str(caught.value)
    assert "401" in str(caught.value)
    assert secret not in str(caught.value) and secret not in repr(client)


def test_plain_http_is_refused_for_a_remote_host():
    with pytest.raises(SettingsError, match="plain http"):
        CleverClient("http://api.clever.com/v3.1", "TOKEN")
    assert CleverClient("http://127.0.0.1:1/v3.1", "TOKEN").base_url == "http://127.0.0.1:1/v3.1"


@pytest.mark.skipif(not dns_says_no_such_host(), reason="no resolver to say the name is unknown")
def test_a_host_that_does_not_exist_fails_at_once_naming_the_setting(sleeps):
    secret = "TOKEN_s3cr3t"
    client = CleverClient("https://api.clever.invalid/v3.1", secret, sleep=sleeps.append)
    with pytest.raises(CleverUnknownHostError) as caught:
        client.district_id()
    assert str(caught.value).startswith("the API host api.clever.invalid does not exist (")
    assert "CLEVER_API_BASE_URL" in str(caught.value) and secret not in str(caught.value)
    assert sleeps == []


def test_a_refused_connection_is_retried_as_the_api_may_be_back_soon(sleeps):
    client = CleverClient("http://127.0.0.1:1/v3.1", "TOKEN", max_attempts=3, sleep=sleeps.append)
    with pytest.raises(CleverError, match="failed 3 times; last: ConnectionError") as caught:
        client.district_id()
    assert not isinstance(caught.value, CleverUnknownHostError)
    assert len(sleeps) == 2


def test_a_bad_request_is_not_retried(client, sleeps, received):
    with pytest.raises(CleverError, match="HTTP 400") as caught:
        client.get_json("/events", {"starting_after": "not-an-id"})
    assert not isinstance(caught.value, CleverAuthError)
    assert len(received) == 1 and sleeps == []


def test_server_errors_are_retried_with_growing_jittered_backoff(simulator, client, sleeps):
    simulator.faults = Faults(rate_5xx=1.0)
    with pytest.raises(CleverError, match="failed 8 times"):
        client.get_json("/districts")

    assert len(sleeps) == 7
    for attempt, delay in enumerate(sleeps, start=1):
        ceiling = min(client.max_backoff_s, client.backoff_s * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_every_fault_kind_is_survived_and_no_page_is_lost(simulator, sim_server, sleeps):
    simulator.faults = Faults(
        rate_429=0.1, rate_5xx=0.15, rate_slow=0.05, slow_seconds=0.5, rate_truncated=0.2, seed=3
    )
    client = CleverClient(
        sim_server.base_url, "TEST_TOKEN", page_size=200, timeout=(2, 0.25), sleep=sleeps.append
    )
    pages = list(client.iter_pages("/events", None, decode_ids))

    assert [i for page in pages for i in page] == retained_ids(simulator)
    assert sleeps  # faults happened and were waited out


def test_rate_limited_requests_wait_until_the_reset_the_server_announced(
    simulator, client, sleeps, received
):
    simulator.faults = Faults(rate_429=0.5, seed=5)
    client.backoff_s = 0.01
    for _ in range(12):
        client.district_id()

    limited = [headers for _, _, status, headers in received if status == 429]
    assert limited and len(sleeps) == len(limited)
    for headers, waited in zip(limited, sleeps, strict=True):
        expected = int(headers["x-ratelimit-reset"]) - time.time()
        # The server's Date header has whole seconds; jitter adds at most backoff_s.
        assert expected - 1.5 <= waited <= expected + 1.5
        assert 0 <= waited <= 61


def test_a_413_halves_the_page_size_until_clever_accepts_it(simulator, sim_server, received):
    client = CleverClient(sim_server.base_url, "TEST_TOKEN", page_size=40_000)
    pages = list(client.iter_pages("/events", None, decode_ids))

    assert [i for page in pages for i in page] == retained_ids(simulator)
    limits = [(q["limit"][0], status) for _, q, status, _ in received]
    assert limits[:3] == [("40000", 413), ("20000", 413), ("10000", 200)]
    assert client.page_size == 10_000


def test_repeated_gateway_timeouts_halve_the_page_size(simulator, client, sleeps, received):
    simulator.faults = Faults(rate_504_large_page=1.0)
    pages = list(client.iter_pages("/events", None, decode_ids))

    assert [i for page in pages for i in page] == retained_ids(simulator)
    limits = [(q["limit"][0], status) for _, q, status, _ in received]
    assert limits[:5] == [
        ("10000", 504),
        ("10000", 504),
        ("5000", 504),
        ("5000", 504),
        ("2500", 200),
    ]
    assert client.page_size == 2500 and len(sleeps) == 2  # a halving is retried at once


def test_a_damaged_page_that_misled_the_download_ahead_is_refetched_and_paging_resumes(
    simulator, sim_server, monkeypatch
):
    """A cut-off body can end in something that reads like a `next` link: the download-ahead
    follows it, the full decode then fails, and the client must refetch and go on from the real
    link, so that no page is skipped."""
    from clever_elt.api import client as client_module

    ids = retained_ids(simulator)
    real_next = client_module.next_page_uri
    damaged = []

    def first_body_misleads(body):
        if not damaged:
            damaged.append(body)
            return f"/v3.1/events?limit=500&starting_after={ids[1200]}"
        return real_next(body)

    def decode(body):
        if damaged and body is damaged[0]:
            damaged.append("decoded")
            raise PageDecodeError("cut off")
        return decode_ids(body)

    monkeypatch.setattr(client_module, "next_page_uri", first_body_misleads)
    client = CleverClient(sim_server.base_url, "TEST_TOKEN", page_size=500)
    pages = list(client.iter_pages("/events", None, decode))

    assert [i for page in pages for i in page] == ids
    assert damaged[1:] == ["decoded"]


def test_several_endpoints_page_back_to_back_each_in_order(simulator, sim_server, received):
    record_types = ["schools", "users", "terms"]
    with CleverClient(sim_server.base_url, "TEST_TOKEN", page_size=100) as client:
        pages = list(client.iter_streams([(f"/{rt}", None) for rt in record_types], decode_ids))

    for index, record_type in enumerate(record_types):
        ids = [i for stream, page in pages if stream == index for i in page]
        assert ids == sorted(simulator.truth.current(record_type))
    assert [stream for stream, _ in pages] == sorted(stream for stream, _ in pages)
    assert [path for path, *_ in received] == sorted(
        (path for path, *_ in received), key=lambda p: record_types.index(p.rsplit("/", 1)[1])
    )


def test_rate_limit_waits_go_by_the_servers_clock_when_the_local_clock_is_off(monkeypatch):
    from clever_elt.api import client as client_module

    real_now = datetime.now(UTC)
    # A simulator whose clock (and so its Date header) is the real time.
    simulator = Simulator(seed=1, scale="tiny", token="T", start=real_now - timedelta(days=38))
    simulator.faults = Faults(rate_429=0.5, seed=5)
    limited = []
    respond = simulator.respond

    def recording(method, target, authorization):
        response = respond(method, target, authorization)
        if response.status == 429:
            limited.append(int(response.headers["x-ratelimit-reset"]) - time.time())
        return response

    simulator.respond = recording
    # This machine's clock 30 s slow: waiting by it would wait 30 s too long.
    monkeypatch.setattr(client_module, "time", SimpleNamespace(time=lambda: time.time() - 30))
    sleeps = []
    with simulator.serve() as server:
        client = CleverClient(server.base_url, "T", sleep=sleeps.append, backoff_s=0.01)
        for _ in range(12):
            client.district_id()

    assert limited and len(sleeps) == len(limited)
    for expected, waited in zip(limited, sleeps, strict=True):
        assert expected - 1.5 <= waited <= expected + 1.5
