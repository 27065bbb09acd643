"""List pages cut into items without a parse (Clever's compact layout) decode exactly as parsed
pages do; a page that cannot be cut safely is parsed, and a damaged one is still refused."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from clever_elt.envelope import PageDecodeError
from clever_elt.lake.events import EventPageDecoder
from clever_elt.lake.snapshots import RecordPageDecoder

EXAMPLES = Path(__file__).resolve().parent / "data" / "clever_examples"
LIST_PAGE = EXAMPLES / "events_list_page.v3.0.expired_cursor_starting_after.raw.json"
EVENT = orjson.loads((EXAMPLES / "users.created.v3.0.teacher.json").read_bytes())["data"]
LINKS = b'[{"rel":"next","uri":"/v3.1/events?starting_after=x"}]'


def uris(items: list[dict], path: str = "/v3.1/events/") -> list[str]:
    return [path + item["id"] for item in items]


def compact_page(texts: list[bytes], item_uris: list[str]) -> bytes:
    """A page in Clever's layout from item texts as they are, not re-serialized."""
    items = [
        b'{"data":' + text + b',"uri":"' + uri.encode() + b'"}'
        for text, uri in zip(texts, item_uris, strict=True)
    ]
    return b'{"data":[' + b",".join(items) + b'],"links":' + LINKS + b"}"


def events(count: int) -> list[dict]:
    return [{**EVENT, "id": f"640df950d306111b2385f{index:03x}"} for index in range(count)]


def event_page(items: list[dict]) -> bytes:
    return compact_page([orjson.dumps(e) for e in items], uris(items))


def loose(body: bytes) -> bytes:
    """The same page with whitespace: not compact, so it is parsed."""
    return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)


def without_extracted_at(table: pa.Table) -> pa.Table:
    return table.drop_columns(["extracted_at"])


def test_a_compact_page_keeps_each_events_original_text():
    # Escapes and number spellings a parse would rewrite: only a cut keeps them.
    texts = [orjson.dumps(e).replace(b'"Robin"', rb'"Rob\u00efn \/ 1.50"') for e in events(3)]
    assert all(rb"\u00ef" in text for text in texts)
    body = compact_page(texts, uris(events(3)))
    page = EventPageDecoder()(body)
    assert [raw.encode() for raw in page.table["raw"].to_pylist()] == texts
    assert page.table["event_id"].to_pylist() == [e["id"] for e in events(3)]
    assert page.table["problem"].null_count == 3
    assert page.next_uri == "/v3.1/events?starting_after=x"


def flagged_events() -> list[dict]:
    """Events with ids the lake can use but flagged for something else."""
    unknown_type, no_time, no_object_id, object_not_an_object = events(4)
    return [
        {**unknown_type, "type": "students.updated"},
        {**no_time, "created": "yesterday"},
        {**no_object_id, "data": {"object": {"name": "no id"}}},
        {**object_not_an_object, "data": {"object": ["not", "an", "object"]}},
    ]


@pytest.mark.parametrize(
    "body",
    [LIST_PAGE.read_bytes(), event_page(events(50)), event_page(flagged_events())],
    ids=["recorded page", "50 events", "flagged events"],
)
def test_cut_and_parsed_pages_decode_alike(body):
    cut, parsed = EventPageDecoder()(body), EventPageDecoder()(loose(body))
    assert cut.table.num_rows == parsed.table.num_rows > 0
    assert without_extracted_at(cut.table).equals(without_extracted_at(parsed.table))
    assert cut.next_uri == parsed.next_uri


def test_flagged_events_with_usable_ids_are_flagged_on_a_cut_page_too():
    page = EventPageDecoder()(event_page(flagged_events()))
    assert page.table["problem"].to_pylist() == [
        "unknown event type",
        "created is missing or not a timestamp",
        "data.object has no id",
        "data.object is not a JSON object",
    ]


def separator_inside_an_event() -> bytes:
    # `},{"data":` inside an event: an array of objects, the second with a `data` key.
    ext = [{"a": "b"}, {"data": 1}]
    event = {**EVENT, "data": {"object": {**EVENT["data"]["object"], "ext": ext}}}
    return event_page([*events(2), event, *events(1)])


def uris_of_other_ids() -> bytes:
    return compact_page([orjson.dumps(e) for e in events(3)], uris(events(3))[::-1])


def uris_of_two_paths() -> bytes:
    two = events(2)
    return compact_page([orjson.dumps(e) for e in two], uris(two[:1]) + uris(two[1:], "/v3/x/"))


def a_key_after_the_uri() -> bytes:
    items = [{"data": e, "uri": f"/v3.1/events/{e['id']}", "x": {"data": 1}} for e in events(2)]
    return orjson.dumps({"data": items, "links": []})


def uri_first() -> bytes:
    return orjson.dumps({"data": [{"uri": "/v3.1/events/x", "data": EVENT}], "links": []})


@pytest.mark.parametrize(
    "make",
    [
        separator_inside_an_event,
        uris_of_other_ids,
        uris_of_two_paths,
        a_key_after_the_uri,
        uri_first,
    ],
)
def test_a_page_that_cannot_be_cut_safely_is_parsed(make):
    body = make()
    items = orjson.loads(body)["data"]
    page = EventPageDecoder()(body)
    assert [orjson.loads(raw) for raw in page.table["raw"].to_pylist()] == [
        i["data"] for i in items
    ]
    assert page.table["event_id"].to_pylist() == [i["data"]["id"] for i in items]
    assert page.table["problem"].null_count == len(items)


@pytest.mark.parametrize(
    "damage",
    [
        (b'"created":', b'"created":,'),  # not JSON inside one event
        (b'"email":"', b'"email":"\\x'),  # a bad escape
        (b"}}", b"}}}"),  # an extra brace: trailing content after the event
    ],
)
def test_a_compact_page_with_a_damaged_event_is_a_decode_error(damage):
    texts = [orjson.dumps(e) for e in events(3)]
    texts[1] = texts[1].replace(*damage, 1)
    assert texts[1] != orjson.dumps(events(3)[1])
    body = compact_page(texts, uris(events(3)))
    with pytest.raises(PageDecodeError):
        EventPageDecoder()(body)


def test_record_pages_are_cut_too():
    records = [{"id": f"5a0000000000000000000{i:03x}", "name": {"first": "Ann"}} for i in range(4)]
    texts = [orjson.dumps(r).replace(b'"Ann"', rb'"\u00c5nn"') for r in records]
    body = compact_page(texts, [f"/v3.1/users/{r['id']}" for r in records])
    cut, parsed = RecordPageDecoder()(body), RecordPageDecoder()(loose(body))
    assert [raw.encode() for raw in cut.table["raw"].to_pylist()] == texts
    assert cut.table["object_id"].equals(parsed.table["object_id"])
    assert [orjson.loads(raw) for raw in cut.table["raw"].to_pylist()] == [
        orjson.loads(raw) for raw in parsed.table["raw"].to_pylist()
    ]
    assert cut.table["problem"].null_count == 4


def test_a_stray_invalid_utf8_byte_is_replaced_and_nothing_is_lost():
    texts = [orjson.dumps(e) for e in events(3)]
    texts[1] = texts[1].replace(b'"Robin"', b'"Rob\xffn"')
    page = EventPageDecoder()(compact_page(texts, uris(events(3))))
    assert page.table["event_id"].to_pylist() == [e["id"] for e in events(3)]
    assert orjson.loads(page.table["raw"][1].as_py())["data"]["object"]["name"]["first"] == (
        "Rob\ufffdn"
    )
    assert page.table["problem"].null_count == 3
