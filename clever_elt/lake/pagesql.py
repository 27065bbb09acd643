"""Running a DuckDB query over the items of one list page: shared by the event and record decoders.

The query reads the table `page_values(value, item_kept_whole)`: each list item's `data` as JSON
text, or the whole item (flagged) when it has no `data`, so nothing is dropped. It returns one row
per item, in order, with each item's id taken from its parsed value in `id_column`, and no item
text: the texts are appended to its result as `raw` from the Arrow table it read (copying ~10 MB
of text out of DuckDB cost ~8 ms a page).

The items come one of two ways:
- **Cut**: a page in Clever's compact layout (`{"data":[{"data":…,"uri":"…/<id>"},…],"links":…}`)
  is cut at each `},{"data":` in Arrow, without parsing it. In valid JSON those bytes are always
  structure (an object's end, then an object whose first key is `data`), never inside a string.
  The cut is right only if every piece is exactly one item: so each piece must end with a
  `,"uri":"<path>/<24-hex id>"` of one shared path, the query's parse of every value must succeed
  (a piece cut at a separator inside an item is not a whole JSON document: the item's braces are
  still open), and every parsed id must equal its uri's. Otherwise the page is parsed instead.
- **Parsed**: DuckDB parses the body, and each item's `data` is written back out as JSON text.

Both give the same values for a compact page: a cut value is the original text, which is what
DuckDB writes back for compact JSON (of other JSON, the cut keeps the original spelling, such as
escaped non-ASCII characters). The cut saves a parse of the body and a copy of the items. The
body reaches DuckDB as Arrow strings (validated UTF-8, no Python str); each thread gets its own
connection.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from clever_elt.envelope import PageDecodeError, compact_items_span

# One parse of the body serializes every item's `data`; an item that is not an object, has no
# `data` or has a null `data` gives a NULL value, and then the page is read item by item instead.
# Each list is unnested alone in its row: next to the 10 MB body column, DuckDB's unnest would
# copy the body into every output chunk.
_DATA_VALUES = """
select unnest(items).data as value, false as item_kept_whole
from (select from_json(body, '{"data": [{"data": "JSON"}]}').data as items from page_body)
"""
_EVERY_ITEM = """
select
    coalesce(json_extract(item, '$.data'), item) as value,
    json_extract(item, '$.data') is null as item_kept_whole
from (
    select unnest(items) as item
    from (select json_extract(body, '$.data[*]') as items from page_body)
)
"""

# Starting at `}` rather than at the uri's closing quote makes Arrow's search ~1.5x faster: `"`
# is the most frequent byte of a page.
_ITEM_SEPARATOR = '},{"data":'
_URI_KEY = b',"uri":"'
_ID_LENGTH = 24
_URI_PATH = re.compile(rb',"uri":"[^"\\]*/')
_ID = "^[0-9a-f]{24}$"

_VALUES_SCHEMA = pa.schema([("value", pa.string()), ("item_kept_whole", pa.bool_())])


class PageQuery:
    """A query over the table `page_values`; see the module docstring for its contract.

    `params` are bound once: each thread's connection binds the query a single time and then
    runs it on every page registered as `page_values` (binding costs ~1.7 ms of a ~19 ms run).
    """

    def __init__(self, sql: str, id_column: str, params: dict[str, Any] | None = None):
        self._sql = sql
        self._params = params
        self._id_column = id_column
        self._local = threading.local()

    def __call__(self, body: bytes) -> pa.Table:
        text, exact = _text(body)
        cut = _cut_items(body, text) if exact else None
        if cut is not None:
            values, uri_ids = cut
            try:
                table = self._run(values)
            except duckdb.Error:
                table = None  # a piece is not JSON: parsing the page says what is wrong
            if table is not None and table[self._id_column].equals(pa.chunked_array([uri_ids])):
                return table.append_column("raw", values["value"])
        try:
            values = self._parsed_items(text)
            return self._run(values).append_column("raw", values["value"])
        except duckdb.Error as exc:
            raise PageDecodeError(f"response is not a complete list page: {exc}") from exc

    def _connection(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = duckdb.connect(":memory:")
            con.execute("SET TimeZone = 'UTC'")
            # One page is one row: extra DuckDB threads only compete with the other decoders.
            con.execute("SET threads = 1")
        return con

    def _run(self, values: pa.Table) -> pa.Table:
        con = self._connection()
        query = getattr(self._local, "query", None)
        if query is None:
            con.register("page_values", _VALUES_SCHEMA.empty_table())
            query = self._local.query = con.sql(self._sql, params=self._params)
            con.unregister("page_values")
        con.register("page_values", values)
        try:
            return query.to_arrow_table()
        finally:
            con.unregister("page_values")

    def _parsed_items(self, text: pa.Array) -> pa.Table:
        con = self._connection()
        con.register("page_body", pa.table({"body": text}))
        try:
            values = con.sql(_DATA_VALUES).to_arrow_table()
            if values["value"].null_count:
                values = con.sql(_EVERY_ITEM).to_arrow_table()
        finally:
            con.unregister("page_body")
        return values.cast(_VALUES_SCHEMA)


def _cut_items(body: bytes, text: pa.Array) -> tuple[pa.Table, pa.Array] | None:
    """(`page_values`, each item's uri id) cut from a compact page, or None when it is not one
    whose every item ends with a uri of one shared path and a 24-hex id."""
    span = compact_items_span(body)
    if span is None:
        return None
    start, end = span
    items = _bytes(text.buffers()[2], start, end)
    pieces = pc.split_pattern(items, _ITEM_SEPARATOR).flatten()
    # Each piece: the item's `data` value, then `,"uri":"<path>/<id>"`.
    last = pieces[-1].as_py()
    uri_length = len(last) - last.rfind(_URI_KEY)
    if uri_length > len(last) or uri_length <= len(_URI_KEY) + _ID_LENGTH + 1:
        return None
    uris = pc.binary_slice(pieces, -uri_length)
    paths = pc.unique(pc.binary_slice(uris, 0, uri_length - _ID_LENGTH - 1))
    if len(paths) != 1 or not _URI_PATH.fullmatch(paths[0].as_py()):
        return None
    # Every cut is next to an ASCII byte of valid UTF-8 text, so every piece is valid UTF-8 too.
    uri_ids = pc.binary_slice(uris, -_ID_LENGTH - 1, -1).view(pa.string())
    if not pc.all(pc.match_substring_regex(uri_ids, _ID)).as_py():
        return None
    values = pc.binary_slice(pieces, 0, -uri_length).view(pa.string())
    item_kept_whole = pa.repeat(False, len(values))
    return pa.table({"value": values, "item_kept_whole": item_kept_whole}), uri_ids


def _text(body: bytes) -> tuple[pa.Array, bool]:
    """The body as an Arrow string, and whether it is the body's bytes exactly (then it holds
    them without a copy)."""
    try:
        return _bytes(pa.py_buffer(body), 0, len(body)).cast(pa.string()), True
    except pa.ArrowInvalid:
        # JSON is UTF-8; a stray invalid byte is replaced rather than stopping the sync.
        return pa.array([body.decode("utf-8", errors="replace")], pa.string()), False


def _bytes(data: pa.Buffer, start: int, end: int) -> pa.Array:
    """`data[start:end]` as a binary array of one value, without a copy."""
    offsets = pa.array([start, end], pa.int32()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, data])
