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

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clever_elt.envelope import next_page_uri
from clever_elt.lake.layout import Lake, atomic_path, write_bytes_atomic
from clever_elt.lake.pagesql import PageQuery

SNAPSHOT_SCHEMA = pa.schema(
    [
        pa.field("object_id", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("problem", pa.string()),
    ]
)

# Same approach as the events decoder: one parse per record for its id, the text kept as is.
_DECODE_SQL = """
with fields as (
    select json_extract_string(value, '$.id') as object_id, value, item_kept_whole
    from page_values
),

final as (
    select
        object_id,
        case
            when item_kept_whole then 'list item has no record object'
            when object_id is not null then null
            when json_type(value) = 'OBJECT' then 'record has no id'
            else 'list item has no record object'
        end as problem
    from fields
)

select * from final
"""

_TAKEN = re.compile(r"^taken=(?P<taken>\d{8}T\d{6}\d*Z)\.json$")


@dataclass(frozen=True)
class RecordPage:
    table: pa.Table
    next_uri: str | None


class RecordPageDecoder:
    """Decodes Data-API list pages (`{"data": [{"data": record, "uri": ...}], "links": [...]}`);
    safe to call from several threads at once."""

    def __init__(self) -> None:
        self._query = PageQuery(_DECODE_SQL, id_column="object_id")

    def __call__(self, body: bytes) -> RecordPage:
        next_uri = next_page_uri(body)
        table = self._query(body).select(SNAPSHOT_SCHEMA.names).cast(SNAPSHOT_SCHEMA)
        return RecordPage(table, next_uri)


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
        # Ids and record texts are unique: dictionary-encoding them only costs time.
        pq.write_table(table, tmp, compression="zstd", use_dictionary=["problem"])
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
