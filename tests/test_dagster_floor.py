"""The Dagster floor benchmark still runs, on a stand-in job of the project's very shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clever_elt.defs.build import build_definitions
from clever_elt.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_dagster_floor_runs_a_stand_in_of_the_projects_job_shape():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.dagster_floor", "--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout)
    graph = build_definitions(Settings()).resolve_asset_graph()
    assert report["shape"] == {
        "steps": len(graph.assets_defs),
        "assets": len(graph.get_all_asset_keys()),
        "checks": len(graph.asset_check_keys),
    }
    assert len(report["shaped_run_s"]) == len(report["one_asset_run_s"]) == 1
    assert report["incremental_budget_at_targets_s"] == 1.99
