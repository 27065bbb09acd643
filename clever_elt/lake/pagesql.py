"""Running a DuckDB query over the items of one list page: shared by the event and record decoders.

The query reads `page_values(value, fields, item_kept_whole)`: each list item's `data` as JSON
text, the few fields the decoder needs from it (a STRUCT of the decoder's `fields` shape), or the
whole item (flagged) when it has no `data` key, so nothing is dropped. The body reaches DuckDB as
an Arrow string (validated UTF-8, no Python str); each thread gets its own connection.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import pyarrow as pa

from clever_elt.envelope import PageDecodeError

# Two passes over the body: one serializes every item's `data`, one types the decoder's fields of
# all items at once (a parse of each item's text instead would cost more than both). The fields
# list has one entry per item; the texts skip items without a `data` key, so when the lengths
# differ the page goes item by item instead.
_LISTS = """
select
    json_extract(body, '$.data[*].data') as data_values,
    from_json(body, '{{"data": [{{"data": {fields}}}]}}').data as items
from page_body
"""
# Each list is unnested alone in its row: next to the 10 MB body column, DuckDB's unnest would
# copy the body into every output chunk.
_DATA_VALUES = """
page_values as (
    select value, item.data as fields, false as item_kept_whole
    from (select unnest(data_values) as value, unnest(items) as item from page_lists)
)"""
_EVERY_ITEM = """
page_values as (
    select
        coalesce(json_extract(item, '$.data'), item) as value,
        from_json(json_extract(item, '$.data'), '{fields}') as fields,
        json_extract(item, '$.data') is null as item_kept_whole
    from (
        select unnest(items) as item
        from (select json_extract(body, '$.data[*]') as items from page_body)
    )
)"""


class PageQuery:
    """A query over `page_values`, written as `with {page_values}, ... select ...`; `fields` is the
    DuckDB JSON structure of what it reads from each item (e.g. `{"id": "VARCHAR"}`)."""

    def __init__(self, sql: str, fields: str):
        self._lists = _LISTS.format(fields=fields)
        self._fast = sql.format(page_values=_DATA_VALUES)
        self._whole = sql.format(page_values=_EVERY_ITEM.format(fields=fields))
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
            lists = con.sql(self._lists).to_arrow_table()
            values, items = lists["data_values"][0], lists["items"][0]
            if values.is_valid and items.is_valid and len(values) == len(items):
                con.register("page_lists", lists)
                return con.sql(self._fast, params=params).to_arrow_table()
            return con.sql(self._whole, params=params).to_arrow_table()
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
