"""Event pages -> lake Parquet files, in bulk: one DuckDB pass per page body, no per-event Python.

Every event keeps its full original JSON in `raw`; the few extracted columns are what partitioning,
the cursor and the warehouse need. Events that cannot be interpreted are kept and flagged in
`problem`, never dropped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clever_elt import spec
from clever_elt.lake.layout import Lake, atomic_path

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("type", pa.string()),
        pa.field("record_type", pa.string()),
        pa.field("action", pa.string()),
        pa.field("created", pa.timestamp("us", tz="UTC")),
        pa.field("object_id", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("problem", pa.string()),
        pa.field("extracted_at", pa.timestamp("us", tz="UTC")),
    ]
)

_DECODED_SCHEMA = EVENT_SCHEMA.append(pa.field("event_date", pa.string()))

# The envelope is parsed once; each event stays JSON text (re-serialized compactly by DuckDB).
_PAGE_SHAPE = '{"data": [{"data": "JSON"}], "links": [{"rel": "VARCHAR", "uri": "VARCHAR"}]}'

_DECODE_SQL = f"""
with page as materialized (
    select from_json($body::JSON, '{_PAGE_SHAPE}') as p
),

items as (
    select unnest(p.data).data as raw from page
),

fields as (
    select
        raw,
        json_extract_string(raw, ['$.id', '$.type', '$.created', '$.data.object.id']) as f,
        json_type(raw, ['$', '$.data.object']) as kinds
    from items
),

typed as (
    select
        raw,
        case when regexp_full_match(f[1], '[0-9a-f]{{24}}') then f[1] end as event_id,
        f[2] as type,
        try_cast(f[3] as timestamptz) as created,
        f[4] as object_id,
        kinds[1] as event_kind,
        kinds[2] as object_kind
    from fields
),

final as (
    select
        event_id,
        type,
        split_part(type, '.', 1) as record_type,
        split_part(type, '.', 2) as action,
        created,
        object_id,
        raw::VARCHAR as raw,
        case
            when event_kind is distinct from 'OBJECT' then 'list item has no event object'
            when event_id is null then 'event id missing or not a 24-hex id'
            when type is null or not list_contains($known_types, type) then 'unknown event type'
            when object_kind is distinct from 'OBJECT' then 'data.object is not a JSON object'
            when object_id is null then 'data.object has no id'
            when created is null then 'created is missing or not a timestamp'
        end as problem,
        $extracted_at::timestamptz as extracted_at,
        -- The id's first 4 bytes are the event's Unix second: the partition date, even when
        -- `created` is unreadable, and ascending with the id so files commit in id order.
        strftime(
            coalesce(to_timestamp(('0x' || event_id[1:8])::BIGINT), $extracted_at::timestamptz),
            '%Y-%m-%d'
        ) as event_date,
        (select list_filter(p.links, lambda l: l.rel = 'next')[1].uri from page) as next_uri
    from typed
)

select * from final
"""

# Only for pages with a list item that is not {"data": {...}}: keep that item's JSON whole.
_ITEMS_SQL = """
select unnest(from_json($body::JSON, '{"data": ["JSON"]}').data)::VARCHAR as item
"""

_NEXT_SQL = f"""
select list_filter(p.links, lambda l: l.rel = 'next')[1].uri
from (select from_json($body::JSON, '{_PAGE_SHAPE}') as p)
"""


class PageDecodeError(ValueError):
    """A response body that is not a complete Clever list page (e.g. cut off mid-JSON)."""


@dataclass(frozen=True)
class EventPage:
    table: pa.Table
    next_uri: str | None

    @property
    def last_event_id(self) -> str | None:
        return pc.max(self.table["event_id"]).as_py() if self.table.num_rows else None


class EventPageDecoder:
    """Decodes event list pages with a private in-memory DuckDB connection (not thread-safe)."""

    def __init__(self) -> None:
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        self._known_types = list(spec.event_types())

    def __call__(self, body: bytes) -> EventPage:
        text = body.decode("utf-8", errors="replace")
        params = {"body": text, "known_types": self._known_types, "extracted_at": datetime.now(UTC)}
        try:
            table = self._con.sql(_DECODE_SQL, params=params).to_arrow_table()
            if table.num_rows == 0:
                next_uri = self._con.execute(_NEXT_SQL, {"body": text}).fetchone()[0]
                return EventPage(_DECODED_SCHEMA.empty_table(), next_uri)
            if table["raw"].null_count:
                items = self._con.sql(_ITEMS_SQL, params={"body": text}).to_arrow_table()
                table = table.set_column(
                    table.schema.get_field_index("raw"),
                    "raw",
                    pc.coalesce(table["raw"], items["item"]),
                )
        except duckdb.Error as exc:
            raise PageDecodeError(f"response is not a complete events page: {exc}") from exc
        next_uri = table["next_uri"][0].as_py()
        return EventPage(table.drop_columns(["next_uri"]).cast(_DECODED_SCHEMA), next_uri)


def write_events(lake: Lake, district: str, page: EventPage) -> list[Path]:
    """Write one decoded page as one file per event date, oldest first; returns the files.

    Files are written in id order, so a crash between two of them leaves a lake whose newest
    event id (the cursor) has everything older than it.
    """
    table = page.table
    dates = table["event_date"]
    written = []
    for date in sorted(pc.unique(dates).to_pylist()):
        part = table.filter(pc.equal(dates, date)).drop_columns(["event_date"])
        # A file of only unidentifiable events gets a unique name that no cursor can mistake.
        first = pc.min(part["event_id"]).as_py() or "unidentified"
        last = pc.max(part["event_id"]).as_py() or uuid.uuid4().hex
        final = lake.event_file(district, date, first, last)
        with atomic_path(final) as tmp:
            pq.write_table(part, tmp, compression="zstd")
        written.append(final)
    return written
