"""Running a DuckDB query over the items of one list page: shared by the event and record decoders.

The query reads `page_values(value, item_kept_whole)`: each list item's `data` as JSON text, or the
whole item (flagged) when it has no `data` key, so nothing is dropped; it returns `value` as its
`raw` column. The body reaches DuckDB as an Arrow string (validated UTF-8, no Python str); each
thread gets its own connection.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import pyarrow as pa

from clever_elt.envelope import PageDecodeError

# One parse of the body serializes every item's `data`; an item that is not an object, has no
# `data` or has a null `data` gives a NULL value, and then the page is read item by item instead.
# Each list is unnested alone in its row: next to the 10 MB body column, DuckDB's unnest would
# copy the body into every output chunk.
_DATA_VALUES = """
page_values as (
    select unnest(items).data as value, false as item_kept_whole
    from (select from_json(body, '{"data": [{"data": "JSON"}]}').data as items from page_body)
)"""
_EVERY_ITEM = """
page_values as (
    select
        coalesce(json_extract(item, '$.data'), item) as value,
        json_extract(item, '$.data') is null as item_kept_whole
    from (
        select unnest(items) as item
        from (select json_extract(body, '$.data[*]') as items from page_body)
    )
)"""


class PageQuery:
    """A query over `page_values`, written as `with {page_values}, ... select ...`."""

    def __init__(self, sql: str):
        self._fast = sql.format(page_values=_DATA_VALUES)
        self._whole = sql.format(page_values=_EVERY_ITEM)
        self._local = threading.local()

    def __call__(self, body: bytes, **params: Any) -> pa.Table:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = duckdb.connect(":memory:")
            con.execute("SET TimeZone = 'UTC'")
            # One page is one row: extra DuckDB threads only compete with the other decoders.
            con.execute("SET threads = 1")
        con.register("page_body", pa.table({"body": _text(body)}))
        try:
            table = con.sql(self._fast, params=params).to_arrow_table()
            if table["raw"].null_count:
                table = con.sql(self._whole, params=params).to_arrow_table()
            return table
        except duckdb.Error as exc:
            raise PageDecodeError(f"response is not a complete list page: {exc}") from exc
        finally:
            con.unregister("page_body")


def _text(body: bytes) -> pa.Array:
    try:
        return pa.array([body], pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        # JSON is UTF-8; a stray invalid byte is replaced rather than stopping the sync.
        return pa.array([body.decode("utf-8", errors="replace")], pa.string())
