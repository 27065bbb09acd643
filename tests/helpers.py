"""Helpers several test modules share: a `clever-elt run` environment and whole-table snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from clever_elt.simulator import Server


def sync_env(data_dir: Path, server: Server, **extra: str) -> dict[str, str]:
    """The environment of a `clever-elt run` syncing `server`'s district into `data_dir`."""
    return {
        **os.environ,
        "COLUMNS": "400",
        "CLEVER_ELT_DATA_DIR": str(data_dir),
        "CLEVER_API_BASE_URL": server.base_url,
        "CLEVER_API_TOKEN": server.simulator.token,
        **extra,
    }


def table_rows(db: Path, schema: str) -> dict[str, list[tuple]]:
    """Every row of every table of one schema of a DuckDB file, in a stable order."""
    with duckdb.connect(str(db), read_only=True) as con:
        names = con.sql(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = $schema order by 1",
            params={"schema": schema},
        ).fetchall()
        return {name: con.sql(f"select * from {name} order by all").fetchall() for (name,) in names}
