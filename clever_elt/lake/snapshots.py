"""Data-API baselines in the lake: record pages -> Parquet, and the manifest that completes one.

A baseline counts only once its manifest exists; the manifest is written after every record type's
files, so a crash mid-baseline leaves files that nothing reads.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clever_elt.lake.events import PageDecodeError
from clever_elt.lake.layout import Lake, atomic_path, write_bytes_atomic

SNAPSHOT_SCHEMA = pa.schema(
    [
        pa.field("object_id", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("problem", pa.string()),
    ]
)

_PAGE_SHAPE = '{"data": ["JSON"], "links": [{"rel": "VARCHAR", "uri": "VARCHAR"}]}'

_DECODE_SQL = f"""
with page as materialized (
    select from_json($body::JSON, '{_PAGE_SHAPE}') as p
),

items as (
    select unnest(p.data) as item from page
),

final as (
    select
        json_extract_string(item, '$.data.id') as object_id,
        coalesce(item -> '$.data', item)::VARCHAR as raw,
        case
            when json_type(item, '$.data') is distinct from 'OBJECT'
                then 'list item has no record object'
            when json_extract_string(item, '$.data.id') is null then 'record has no id'
        end as problem,
        (select list_filter(p.links, lambda l: l.rel = 'next')[1].uri from page) as next_uri
    from items
)

select * from final
"""

_NEXT_SQL = f"""
select list_filter(p.links, lambda l: l.rel = 'next')[1].uri
from (select from_json($body::JSON, '{_PAGE_SHAPE}') as p)
"""

_TAKEN = re.compile(r"^taken=(?P<taken>\d{8}T\d{6}\d*Z)\.json$")


@dataclass(frozen=True)
class RecordPage:
    table: pa.Table
    next_uri: str | None


class RecordPageDecoder:
    """Decodes Data-API list pages (`{"data": [{"data": record, "uri": ...}], "links": [...]}`)."""

    def __init__(self) -> None:
        self._con = duckdb.connect(":memory:")

    def __call__(self, body: bytes) -> RecordPage:
        params = {"body": body.decode("utf-8", errors="replace")}
        try:
            table = self._con.sql(_DECODE_SQL, params=params).to_arrow_table()
            if table.num_rows == 0:
                next_uri = self._con.execute(_NEXT_SQL, params).fetchone()[0]
                return RecordPage(SNAPSHOT_SCHEMA.empty_table(), next_uri)
        except duckdb.Error as exc:
            raise PageDecodeError(f"response is not a complete list page: {exc}") from exc
        next_uri = table["next_uri"][0].as_py()
        return RecordPage(table.drop_columns(["next_uri"]).cast(SNAPSHOT_SCHEMA), next_uri)


def new_taken() -> str:
    """A baseline's partition value: the UTC wall time, sortable, safe in any file system."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def write_records(
    lake: Lake, record_type: str, district: str, taken: str, page: RecordPage
) -> Path | None:
    table = page.table
    if table.num_rows == 0:
        return None
    first = pc.min(table["object_id"]).as_py() or "unidentified"
    final = (
        lake.snapshot_dir(record_type, district, taken) / f"part-{first}-{uuid.uuid4().hex}.parquet"
    )
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return final


@dataclass(frozen=True)
class BaselineManifest:
    """What one complete baseline is: when, why, and where the event stream stood.

    `anchor_event_id` is the newest event id noted just before the baseline was taken (None when
    the district had no events). For a resync, `lost_cursor` is the cursor that had expired and
    `first_retained_event_id` the oldest event the API still held.
    """

    district: str
    taken: str
    reason: str  # "initial" or "resync"
    anchor_event_id: str | None
    lost_cursor: str | None = None
    first_retained_event_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def write(self, lake: Lake) -> Path:
        path = lake.baseline_manifest(self.district, self.taken)
        write_bytes_atomic(path, orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))
        return path


def baseline_manifests(lake: Lake, district: str | None = None) -> list[BaselineManifest]:
    """Complete baselines, oldest first."""
    pattern = f"district={district}/taken=*.json" if district else "district=*/taken=*.json"
    found = [
        BaselineManifest(**orjson.loads(path.read_bytes()))
        for path in lake.manifests_dir.glob(pattern)
        if _TAKEN.match(path.name)
    ]
    return sorted(found, key=lambda m: (m.district, m.taken))
