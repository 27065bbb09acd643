"""Running a DuckDB query over one response body: shared by the event and record page decoders.

The body reaches DuckDB as an Arrow string (validated UTF-8, no copy into a Python str), and each
thread gets its own in-memory connection so decoders can run on several threads at once.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import pyarrow as pa

from clever_elt.envelope import PageDecodeError


class PageQuery:
    """One SQL query that reads the body as `page_body.body`; `__call__(body, **params)`."""

    def __init__(self, sql: str):
        self._sql = sql
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
            return con.sql(self._sql, params=params).to_arrow_table()
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
