"""Event pages -> lake files, on the real recorded Clever payloads and on malformed pages: nothing
is lost, what cannot be interpreted is flagged, files are whole and named so the cursor is safe."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest

from clever_elt.envelope import PageDecodeError, next_page_uri
from clever_elt.lake.events import EventPageDecoder, write_events
from clever_elt.lake.layout import Lake, atomic_path

EXAMPLES = Path(__file__).resolve().parent / "data" / "clever_examples"
LIST_PAGE = EXAMPLES / "events_list_page.v3.0.expired_cursor_starting_after.raw.json"
EMPTY_PAGE = EXAMPLES / "events_list_page.v1.1.end_of_stream_empty.raw.json"
SINGLE_ITEMS = sorted(p for p in EXAMPLES.glob("*.*.v*.json") if "list_page" not in p.name)


def page_of(items: list, links: list | None = None) -> bytes:
    return orjson.dumps({"data": items, "links": links or []})


def read_lake(lake: Lake) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    glob = str(lake.events_dir / "**" / "*.parquet")
    query = f"select * from read_parquet('{glob}', hive_partitioning = true) order by event_id"
    return con.sql(query).to_arrow_table().to_pylist()


def recorded_items() -> list[dict]:
    items = orjson.loads(LIST_PAGE.read_bytes())["data"]
    return items + [orjson.loads(p.read_bytes()) for p in SINGLE_ITEMS]


def test_recorded_examples_land_in_the_lake_without_loss(tmp_path):
    lake = Lake(tmp_path)
    items = recorded_items()
    decode = EventPageDecoder()
    pages = [decode(LIST_PAGE.read_bytes())] + [decode(page_of([i])) for i in items[100:]]
    for page in pages:
        write_events(lake, "d1", page)

    rows = read_lake(lake)
    by_id = {row["event_id"]: row for row in rows}
    assert len(rows) == len(by_id) == len(items) == 100 + len(SINGLE_ITEMS)
    for item in items:
        event = item["data"]
        row = by_id[event["id"]]
        assert orjson.loads(row["raw"]) == event
        assert row["type"] == event["type"]
        assert row["object_id"] == event["data"]["object"]["id"]
        assert row["district"] == "d1"
        assert row["date"].isoformat() == row["created"].date().isoformat()
    # v1.1's `students.updated` is not a v3.1 event type: kept whole, flagged.
    flagged = {row["type"]: row["problem"] for row in rows if row["problem"]}
    assert flagged == {"students.updated": "unknown event type"}
    assert by_id["53ff6e6b322eced002000088"]["problem"] is None  # v1.1 sections.updated is known


def test_previous_attributes_survive_at_either_place(tmp_path):
    event = orjson.loads((EXAMPLES / "users.updated.v3.0.roles_sparse_diff.json").read_bytes())
    top = orjson.loads(orjson.dumps(event))
    top["data"]["previous_attributes"] = top["data"]["data"].pop("previous_attributes")
    top["data"]["id"] = "640df950d306111b2385f6d4"
    page = EventPageDecoder()(page_of([event, top]))
    raws = [orjson.loads(raw) for raw in page.table["raw"].to_pylist()]
    assert raws == [event["data"], top["data"]]
    assert page.table["problem"].null_count == 2


def test_end_of_stream_page_has_no_events_and_no_next_link(tmp_path):
    page = EventPageDecoder()(EMPTY_PAGE.read_bytes())
    assert page.table.num_rows == 0
    assert page.next_uri is None
    assert write_events(Lake(tmp_path), "d1", page) == []


def test_next_link_of_the_recorded_page_is_its_next_rel():
    page = EventPageDecoder()(LIST_PAGE.read_bytes())
    assert page.next_uri == "/v3.0/events?starting_after=64206e4531f12f05cc490ffd"
    assert page.last_event_id == "64206e4531f12f05cc490ffd"


def test_malformed_events_are_kept_and_flagged(tmp_path):
    good = orjson.loads((EXAMPLES / "users.created.v3.0.teacher.json").read_bytes())
    event = good["data"]

    def variant(**changes):
        copy = orjson.loads(orjson.dumps(event))
        copy.update(changes)
        return {"data": copy, "uri": "/v3.1/events/x"}

    items = [
        good,
        {"uri": "/v3.1/events/nothing"},
        {"data": "not an event"},
        variant(id="not-hex"),
        variant(id="640df950d306111b2385f3f1", type="students.updated"),
        variant(id="640df950d306111b2385f3f2", data={"object": ["not", "an", "object"]}),
        variant(id="640df950d306111b2385f3f3", data={"object": {"name": "no id"}}),
        variant(id="640df950d306111b2385f3f4", created="yesterday"),
        variant(id="640df950d306111b2385f3f5", type="rosters"),
        variant(id="640df950d306111b2385f3f6", type="users.updated.twice"),
    ]
    page = EventPageDecoder()(page_of(items))
    assert page.counts() == {
        ("users", "created"): 5,
        (None, None): 2,
        ("students", "updated"): 1,
        ("rosters", ""): 1,
        ("users", "updated"): 1,
    }
    write_events(Lake(tmp_path), "d1", page)
    rows = read_lake(Lake(tmp_path))

    problems = sorted((row["problem"] or "") for row in rows)
    assert problems == sorted(
        [
            "",
            "list item has no event object",
            "list item has no event object",
            "event id missing or not a 24-hex id",
            "unknown event type",
            "data.object is not a JSON object",
            "data.object has no id",
            "created is missing or not a timestamp",
            "unknown event type",
            "unknown event type",
        ]
    )
    # record_type and action split the type as SQL's split_part does.
    parts = {(row["type"], row["record_type"], row["action"]) for row in rows}
    assert ("rosters", "rosters", "") in parts
    assert ("users.updated.twice", "users", "updated") in parts
    assert (None, None, None) in parts
    # An item without `data` is kept whole; otherwise `data` is kept, whatever it holds.
    kept = {row["raw"] for row in rows}
    assert orjson.dumps(items[1]).decode() in kept
    assert '"not an event"' in kept
    # Events without an id share the file of their identified neighbours (same date, one file).
    assert {row["date"].isoformat() for row in rows} == {"2023-03-12"}
    assert len(Lake(tmp_path).event_files("d1")) == 1


def test_a_cut_off_body_is_a_decode_error():
    body = LIST_PAGE.read_bytes().rstrip()
    for cut in (len(body) // 2, len(body) - 1, 10):
        with pytest.raises(PageDecodeError):
            EventPageDecoder()(body[:cut])


def test_a_json_body_that_is_not_a_page_is_a_decode_error():
    for body in (b'{"message": "Unauthorized"}', b"[]", b'{"data": "x"}'):
        with pytest.raises(PageDecodeError):
            EventPageDecoder()(body)


def write_page_of_ids(lake: Lake, ids: list[str]) -> list[Path]:
    """Write one page of copies of a recorded event, with these ids (their times give the dates)."""
    event = orjson.loads((EXAMPLES / "users.created.v3.0.student.json").read_bytes())["data"]
    items = [{"data": {**event, "id": event_id}} for event_id in ids]
    return write_events(lake, "d1", EventPageDecoder()(page_of(items)))


def test_a_page_spanning_two_dates_is_written_as_two_files_in_id_order(tmp_path):
    lake = Lake(tmp_path)
    ids = ["640df950d306111b2385f3e8", "640f5000d306111b2385f3e9", "640f6000d306111b2385f3ea"]
    files = write_page_of_ids(lake, ids)

    assert [f.parent.name for f in files] == ["date=2023-03-12", "date=2023-03-13"]
    assert [f.name for f in files] == [
        f"part-{ids[0]}-{ids[0]}.parquet",
        f"part-{ids[1]}-{ids[2]}.parquet",
    ]
    assert lake.cursor("d1") == ids[2]
    assert lake.event_files("d1") == files


def test_a_page_out_of_id_order_still_gets_one_file_per_date_oldest_first(tmp_path):
    lake = Lake(tmp_path)
    ids = ["640f5000d306111b2385f3e9", "640df950d306111b2385f3e8", "640f6000d306111b2385f3ea"]
    files = write_page_of_ids(lake, ids)

    assert [f.name for f in files] == [
        f"part-{ids[1]}-{ids[1]}.parquet",
        f"part-{ids[0]}-{ids[2]}.parquet",
    ]
    assert [row["event_id"] for row in read_lake(lake)] == sorted(ids)


def test_cursor_ignores_unfinished_writes_and_unidentified_files(tmp_path):
    lake = Lake(tmp_path)
    event = orjson.loads((EXAMPLES / "users.created.v3.0.student.json").read_bytes())["data"]
    write_events(lake, "d1", EventPageDecoder()(page_of([{"data": event}])))
    write_events(lake, "d1", EventPageDecoder()(page_of([{"data": "nothing"}])))
    leftover = lake.event_file(
        "d1", "2023-03-12", "640df950d306111b2385f3e9", "ffffffffffffffffffffffff"
    )
    with pytest.raises(RuntimeError), atomic_path(leftover) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("crash")

    assert not leftover.exists()
    assert lake.cursor("d1") == event["id"]
    assert len(lake.event_files("d1")) == 2


def test_temp_files_left_by_a_crash_are_removed(tmp_path):
    lake = Lake(tmp_path)
    stray = lake.district_events_dir("d1") / "date=2023-03-12" / ".tmp-abc-part-x-y.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"partial")
    assert lake.remove_temp_files() == 1
    assert not stray.exists()
    assert lake.cursor("d1") is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"data":[{"data":{}}],"links":[{"rel":"next","uri":"/v3.1/events?x=1"}]}',
            "/v3.1/events?x=1",
        ),
        (b'{"data":[{"data":{}}],"links":[{"rel":"prev","uri":"/p"}]}', None),
        # Empty data ends the stream even with a next link.
        (b'{"data":[],"links":[{"rel":"next","uri":"/v3.1/events?x=1"}]}', None),
        # Links first: read by a full parse.
        (
            b'{"links":[{"rel":"next","uri":"/n"}],"data":[{"links":[{"rel":"next","uri":"/bad"}]}]}',
            "/n",
        ),
        # A `links` key nested in the last record is not the page's links.
        (
            b'{"data":[{"data":{"links":[{"rel":"next","uri":"/bad"}]}}],'
            b' "links" : [ {"rel":"next","uri":"/good"} ] }\n',
            "/good",
        ),
    ],
)
def test_next_page_uri_reads_the_pages_own_links(body, expected):
    assert next_page_uri(body) == expected


def test_next_page_uri_rejects_bodies_that_are_not_pages():
    cut = b'{"data":[{"data":{"object":{"links":[]}'
    for body in (cut, b"<html>502 Bad Gateway</html>", b'{"message":"x"}', b""):
        with pytest.raises(PageDecodeError):
            next_page_uri(body)
