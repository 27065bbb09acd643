"""All or nothing on a DuckDB connection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction: committed if the block completes, rolled back if it
    raises.

    After some errors (a write that fails on a full disk, a failed commit) DuckDB has already
    ended the transaction, and the rollback fails with "no transaction is active": the block's own
    error is the one raised, since it is the one that says what went wrong.
    """
    con.execute("begin transaction")
    try:
        yield
        con.execute("commit")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        raise
