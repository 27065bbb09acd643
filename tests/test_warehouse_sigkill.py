"""SIGKILL while the warehouse works: `clever-elt run` is killed just before one of the SQL
statements of its load, models or checks (some of the load's, some commits, some anywhere), again
and again, then left to finish; the tables it ends with are those of a sync that was never killed,
for a first sync and for an incremental one."""

from __future__ import annotations

import random
import signal
import textwrap
from pathlib import Path

import duckdb

from clever_elt.simulator import Server
from helpers import event_ids, run_python, sync_env, table_rows

SEED = 20261127
KILLS = {"load": 2, "commit": 2, "any": 2}  # per sync

# `clever-elt run`, with every warehouse connection counting the statements sent through it:
# KILL_AT = k > 0 SIGKILLs the process just before the k-th. Each statement's start goes to stderr.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import clever_elt.warehouse as warehouse

    kill_at, statements = int(sys.argv[1]), [0]

    class Tripwire:
        def __init__(self, con):
            self._con = con

        def __getattr__(self, name):
            return getattr(self._con, name)

        def _trip(self, query):
            statements[0] += 1
            if statements[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            sys.stderr.write("STATEMENT " + " ".join(query.split())[:80] + "\\n")

        def execute(self, query, *args, **kwargs):
            self._trip(query)
            return self._con.execute(query, *args, **kwargs)

        def sql(self, query, *args, **kwargs):
            self._trip(query)
            return self._con.sql(query, *args, **kwargs)

    connect = warehouse.connect
    warehouse.connect = lambda *args, **kwargs: Tripwire(connect(*args, **kwargs))
    from clever_elt.cli import main

    sys.exit(main(["run"]))
    """
)


def _run(data_dir: Path, server: Server, kill_at: int) -> tuple[int, list[str]]:
    """(exit code, the statements sent) of one run; the code is -SIGKILL when it was killed."""
    result = run_python(["-c", CHILD, str(kill_at)], sync_env(data_dir, server))
    assert result.returncode in (0, -signal.SIGKILL), result.stderr[-3000:]
    prefix = "STATEMENT "
    sent = [line[len(prefix) :] for line in result.stderr.splitlines() if line.startswith(prefix)]
    return result.returncode, sent


def _kill_points(statements: list[str], rng: random.Random) -> list[int]:
    """1-based statement numbers to kill at: some of the load's, some commits, some anywhere."""
    kinds = {
        "load": [i for i, s in enumerate(statements, 1) if "raw." in s and "insert" in s],
        "commit": [i for i, s in enumerate(statements, 1) if s == "commit"],
        "any": list(range(1, len(statements) + 1)),
    }
    return sorted(p for kind, count in KILLS.items() for p in rng.sample(kinds[kind], count))


def _tables(db: Path) -> dict[str, list[tuple]]:
    """Every row of the clever tables, the event ids loaded, and the audit tables' sizes (their
    rows name the baseline by the wall time it was taken at, which two syncs do not share)."""
    tables = table_rows(db, "clever")
    with duckdb.connect(str(db), read_only=True) as con:
        for (name,) in con.sql(
            "select 'audit.' || table_name from information_schema.tables "
            "where table_schema = 'audit'"
        ).fetchall():
            tables[name] = con.sql(f"select count(*) from {name}").fetchall()
    tables["raw.events"] = event_ids(db)
    return tables


def test_sigkill_during_load_models_or_checks_then_a_rerun_gives_the_unkilled_tables(
    sim_server, tmp_path
):
    rng = random.Random(SEED)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for sync in ("first", "incremental"):
        if sync == "incremental":
            sim_server.simulator.advance(events=300)
        code, statements = _run(reference, sim_server, kill_at=0)
        assert code == 0, sync
        kills = 0
        for kill_at in _kill_points(statements, rng):
            code, _ = _run(killed, sim_server, kill_at)
            kills += code == -signal.SIGKILL
        assert kills, f"{sync}: no run was killed"
        assert _run(killed, sim_server, kill_at=0)[0] == 0, sync
        assert _tables(killed / "warehouse.duckdb") == _tables(reference / "warehouse.duckdb"), sync
