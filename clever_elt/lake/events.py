"""Event pages -> lake Parquet files, in bulk: DuckDB over each page body, no per-event Python.

Every event keeps its full original JSON in `raw`; the few extracted columns are what partitioning,
the cursor and the warehouse need. Events that cannot be interpreted are kept and flagged in
`problem`, never dropped.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clever_elt import spec
from clever_elt.envelope import PageDecodeError, next_page_uri
from clever_elt.lake.layout import Lake, atomic_path
from clever_elt.lake.pagesql import PageQuery

__all__ = [
    "EVENT_SCHEMA",
    "EventPage",
    "EventPageDecoder",
    "PageDecodeError",
    "write_events",
]

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

# Dictionary-encoding columns of (nearly) unique values only costs time before Parquet gives up.
_DICTIONARY_COLUMNS = ["type", "record_type", "action", "problem", "extracted_at"]

_DECODED_SCHEMA = EVENT_SCHEMA.append(pa.field("event_date", pa.date32()))

# One parse per event takes the few fields extraction needs; the event text itself is kept as is.
# (Parsing whole pages into typed structs is several times slower.)
_DECODE_SQL = """
with fields as (
    select
        value as event_text,
        item_kept_whole,
        json_extract_string(value, ['$.id', '$.type', '$.created', '$.data.object.id']) as f
    from page_values
),

typed as (
    select
        event_text,
        item_kept_whole,
        f[1] as id_text,
        case when regexp_full_match(f[1], '[0-9a-f]{24}') then f[1] end as event_id,
        f[2] as type,
        try_cast(f[3] as timestamptz) as created,
        f[4] as object_id
    from fields
),

final as (
    select
        event_id,
        type,
        created,
        object_id,
        -- CASE evaluates a branch only for the rows that reach it, so json_type runs only for
        -- the rare malformed event.
        case
            when item_kept_whole then 'list item has no event object'
            when id_text is null then
                case
                    when json_type(event_text) = 'OBJECT' then 'event id missing or not a 24-hex id'
                    else 'list item has no event object'
                end
            when event_id is null then 'event id missing or not a 24-hex id'
            when type is null or not regexp_full_match(type, $known_types) then 'unknown event type'
            when object_id is null then
                case
                    when json_type(event_text, '$.data.object') = 'OBJECT'
                        then 'data.object has no id'
                    else 'data.object is not a JSON object'
                end
            when created is null then 'created is missing or not a timestamp'
        end as problem,
        -- The id's first 4 bytes are the event's Unix second: the partition date (in days since
        -- 1970, Arrow's date32), ascending with the id so files commit in id order.
        (('0x' || event_id[1:8])::BIGINT // 86400)::INTEGER as event_date
    from typed
)

select * from final
"""


@dataclass(frozen=True)
class EventPage:
    table: pa.Table
    next_uri: str | None

    @property
    def last_event_id(self) -> str | None:
        return pc.max(self.table["event_id"]).as_py() if self.table.num_rows else None

    def counts(self) -> Counter[tuple[str | None, str | None]]:
        """Events per (record_type, action)."""
        counted = pc.value_counts(self.table["type"])
        types, numbers = counted.field("values").to_pylist(), counted.field("counts").to_pylist()
        counts: Counter[tuple[str | None, str | None]] = Counter()
        for type_, number in zip(types, numbers, strict=True):
            counts[_split_type(type_)] += number
        return counts


class EventPageDecoder:
    """Decodes event list pages; safe to call from several threads at once."""

    def __init__(self) -> None:
        # A regex alternation: several times cheaper per row than list_contains on a list.
        known_types = "|".join(re.escape(t) for t in spec.event_types())
        self._query = PageQuery(_DECODE_SQL, "event_id", params={"known_types": known_types})

    def __call__(self, body: bytes) -> EventPage:
        next_uri = next_page_uri(body)
        extracted_at = datetime.now(UTC)
        table = self._query(body)
        record_type, action = _type_parts(table["type"])
        table = table.append_column("record_type", record_type).append_column("action", action)
        table = table.append_column("extracted_at", pa.repeat(extracted_at, table.num_rows))
        table = table.select(_DECODED_SCHEMA.names).cast(_DECODED_SCHEMA)
        if table["event_date"].null_count:
            table = _date_unidentified(table, extracted_at)
        return EventPage(table, next_uri)


def _split_type(type_: str | None) -> tuple[str | None, str | None]:
    """(record type, action) of an event type, as SQL's split_part gives them ('' when missing)."""
    if type_ is None:
        return None, None
    parts = type_.split(".")
    return parts[0], parts[1] if len(parts) > 1 else ""


def _type_parts(types: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """`record_type` and `action` of each event, split once per distinct type."""
    encoded = pc.dictionary_encode(types.combine_chunks())
    parts = [_split_type(type_) for type_ in encoded.dictionary.to_pylist()]
    record_types = pa.array([record_type for record_type, _ in parts], pa.string())
    actions = pa.array([action for _, action in parts], pa.string())
    return record_types.take(encoded.indices), actions.take(encoded.indices)


def _date_unidentified(table: pa.Table, extracted_at: datetime) -> pa.Table:
    """Give events without a usable id the date of the next identified event on the page (else
    the previous one, else their own `created`, else today), so they are committed in the same
    file as their neighbours, before the cursor can move past them."""
    dates = table["event_date"]
    own = table["created"].cast(pa.date32())
    filled = pc.coalesce(
        pc.fill_null_forward(pc.fill_null_backward(dates)),
        own,
        pa.scalar(extracted_at.date(), pa.date32()),
    )
    return table.set_column(table.schema.get_field_index("event_date"), "event_date", filled)


def write_events(lake: Lake, district: str, page: EventPage) -> list[Path]:
    """Write one decoded page as one file per event date, oldest first; returns the files.

    Files are written in id order, so a crash between two of them leaves a lake whose newest
    event id (the cursor) has everything older than it.
    """
    written = []
    for day, part in _date_runs(page.table):
        # A file of only unidentifiable events gets a unique name that no cursor can mistake.
        first = pc.min(part["event_id"]).as_py() or "unidentified"
        last = pc.max(part["event_id"]).as_py() or uuid.uuid4().hex
        final = lake.event_file(district, day.isoformat(), first, last)
        with atomic_path(final) as tmp:
            pq.write_table(part, tmp, compression="zstd", use_dictionary=_DICTIONARY_COLUMNS)
        written.append(final)
    return written


def _date_runs(table: pa.Table) -> Iterator[tuple[date, pa.Table]]:
    """`(event date, its events)` per date, oldest first, each in page order, without `event_date`.

    Pages come in id order, hence in date order: each date is then a slice of the page (no copy).
    """
    if table.num_rows == 0:
        return
    steps = _steps(table["event_date"])
    if pc.any(pc.less(steps, 0)).as_py():
        table = table.take(pc.sort_indices(table, [("event_date", "ascending")]))  # stable
        steps = _steps(table["event_date"])
    starts = [0, *pc.indices_nonzero(steps).to_pylist(), table.num_rows]
    dates = table["event_date"]
    events = table.drop_columns(["event_date"])
    for start, stop in itertools.pairwise(starts):
        yield dates[start].as_py(), events.slice(start, stop - start)


def _steps(dates: pa.ChunkedArray) -> pa.Array:
    """Days from each date to the next (null first)."""
    return pc.pairwise_diff(dates.cast(pa.int32()).combine_chunks())
