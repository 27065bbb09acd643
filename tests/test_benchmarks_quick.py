"""The benchmark command keeps working: one quick run end to end writes well-formed results, and
its truth comparison catches tables that disagree with the simulator. Times are never asserted.

The quick run takes one to two minutes; deselect it with `-m "not benchmark"`.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from benchmarks import verify
from clever_elt.simulator import Simulator

REPO = Path(__file__).resolve().parent.parent
QUICK_EVENTS = 50_000


@pytest.mark.benchmark
def test_quick_benchmark_writes_well_formed_results(tmp_path: Path) -> None:
    results = tmp_path / "results"
    argv = [
        sys.executable,
        "-m",
        "benchmarks.compare",
        "--quick",
        f"--results-dir={results}",
        f"--work-dir={tmp_path / 'work'}",
    ]
    has_dlt = importlib.util.find_spec("dlt") is not None
    if not has_dlt:
        argv.append("--dlt-events=0")  # the bench extra is not installed: floor and clever-elt
    run = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)

    # 0: every step ran and agrees with the truth; 1: a step failed or disagrees (in the results).
    assert run.returncode in (0, 1), run.stderr[-3000:]
    result = json.loads((results / f"quick-{QUICK_EVENTS}.json").read_text())
    steps = {(s["contender"], s["phase"]): s for s in result["steps"]}
    expected = {("floor", "full"), ("clever-elt", "full"), ("clever-elt", "incremental")}
    if has_dlt:
        expected |= {("dlt", "full"), ("dlt", "incremental")}
    assert set(steps) == expected, [s["error"] for s in result["steps"]]
    floor = steps["floor", "full"]
    assert 0.9 * QUICK_EVENTS <= floor["events"] <= 1.1 * QUICK_EVENTS
    for step in steps.values():
        if step["error"] is None:
            assert step["wall_s"] > 0 and step["peak_rss_bytes"] > 0
            assert step["events_per_s"] == pytest.approx(step["events"] / step["wall_s"])
        if step["contender"] != "floor":
            assert step["agrees_with_truth"] in (True, False)
            assert step["error"] is not None or len(step["checks"]) == 7
    assert set(result["targets"]) == {
        "clever_elt_vs_dlt_events_per_s",
        "clever_elt_full_events_per_s",
        "incremental_share_of_full_wall",
        "clever_elt_peak_rss_bytes",
    }
    assert "clever_elt_vs_floor_events_per_s" in result["ratios"]
    assert "results:" in run.stdout and "clever-elt full" in run.stdout


@pytest.fixture
def users_table(tmp_path: Path, simulator: Simulator) -> tuple[Path, Path]:
    """A DuckDB file whose `clever.users_current` is exactly the simulator's live users, and the
    truth file written from the same records."""
    truth = tmp_path / "users.json"
    truth.write_bytes(orjson.dumps(list(simulator.truth.current("users").values())))
    db = tmp_path / "contender.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA clever")
        con.execute(
            "CREATE TABLE clever.users_current AS "
            f"SELECT id, district, email, name FROM read_json('{truth}')"
        )
    return db, truth


def test_truth_check_agrees_with_an_exact_copy(users_table: tuple[Path, Path]) -> None:
    db, truth = users_table
    [check] = verify.check_database(db, {"users": truth}, verify.clever_elt_sql)
    assert check.agrees, check.as_dict()
    assert check.rows == check.truth_rows > 0
    assert {"email", "name.first", "name.last"} <= set(check.fields)


def test_truth_check_counts_missing_unexpected_and_changed_rows(
    users_table: tuple[Path, Path],
) -> None:
    db, truth = users_table
    with duckdb.connect(str(db)) as con:
        changed, missing = (
            row[0]
            for row in con.execute(
                "SELECT id FROM clever.users_current ORDER BY id LIMIT 2"
            ).fetchall()
        )
        con.execute(
            "UPDATE clever.users_current SET email = 'x@example.org' WHERE id = $id",
            {"id": changed},
        )
        con.execute("DELETE FROM clever.users_current WHERE id = $id", {"id": missing})
        con.execute(
            "INSERT INTO clever.users_current SELECT 'ffffffffffffffffffffffff', district, email, "
            "name FROM clever.users_current LIMIT 1"
        )
    [check] = verify.check_database(db, {"users": truth}, verify.clever_elt_sql)
    assert not check.agrees
    assert (check.missing_ids, check.unexpected_ids, check.differing_rows) == (1, 1, 1)
    by_id = {example["id"]: example for example in check.examples}
    assert by_id[changed]["fields"]["email"]["contender"] == "x@example.org"
    assert by_id[missing]["in_contender"] is False


def test_truth_check_reports_a_missing_table(users_table: tuple[Path, Path]) -> None:
    db, truth = users_table
    [check] = verify.check_database(db, {"sections": truth}, verify.clever_elt_sql)
    assert not check.agrees and check.error == "no such table"
