"""Helpers several test modules share: running clever-elt in a child process, its settings for a
simulator, and what a warehouse holds (whole tables, loaded event ids)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson

from clever_elt.simulator import Server


def dns_says_no_such_host() -> bool:
    """Whether this machine's resolver answers "no such name" for a reserved name (RFC 6761's
    .invalid never exists); without a resolver it cannot say, and the client retries."""
    try:
        socket.getaddrinfo("api.clever.invalid", 443)
    except socket.gaierror as exc:
        return exc.errno == socket.EAI_NONAME
    return False


def run_benchmark(module: str, *args: str) -> dict:
    """`python -m benchmarks.<module> <args>` in the repository; the JSON report it prints."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return orjson.loads(done.stdout)


def child_env(env: dict[str, str]) -> dict[str, str]:
    """`env` over this environment, with a console wide enough that no line wraps."""
    return {**os.environ, "COLUMNS": "400", **env}


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python <args>` with `child_env(env)`."""
    return subprocess.run(
        [sys.executable, *args],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`clever-elt <args>` (e.g. `run`) with `env` over this environment."""
    return run_python(["-m", "clever_elt.cli", *args], env)


def sync_env(data_dir: Path, server: Server, **extra: str) -> dict[str, str]:
    """The settings of a sync of `server`'s district into `data_dir` (`extra` overrides them)."""
    return {
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


def event_ids(db: Path) -> list[str]:
    """The ids in `raw.events`, sorted (a repeated id appears twice)."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.sql("select event_id from raw.events order by 1").fetchall()
    return [event_id for (event_id,) in rows]
