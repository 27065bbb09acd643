"""The Dagster floor benchmark still runs, on a stand-in job of the project's very shape."""

from __future__ import annotations

from clever_elt.defs.build import build_definitions
from clever_elt.settings import Settings
from helpers import run_benchmark


def test_dagster_floor_runs_a_stand_in_of_the_projects_job_shape():
    report = run_benchmark("dagster_floor", "--runs", "1")
    graph = build_definitions(Settings()).resolve_asset_graph()
    assert report["shape"] == {
        "steps": len(graph.assets_defs),
        "assets": len(graph.get_all_asset_keys()),
        "checks": len(graph.asset_check_keys),
    }
    assert len(report["shaped_run_s"]) == len(report["one_asset_run_s"]) == 1
    assert report["incremental_budget_at_targets_s"] == 1.99
