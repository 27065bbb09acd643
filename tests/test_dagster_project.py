"""The Dagster project as a data engineer meets it: definitions, full syncs, checks, the web UI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import requests

from clever_elt import spec
from clever_elt.defs.assets import model_assets
from clever_elt.defs.build import build_definitions
from clever_elt.defs.resources import DataDirResource
from clever_elt.defs.schedules import DAILY_SYNC, SYNC_JOB
from clever_elt.settings import Settings
from clever_elt.simulator import Server
from clever_elt.warehouse import Model
from clever_elt.warehouse.check_state import CHANGED_IDS_ONLY, UNCHANGED
from helpers import table_rows

REPO = Path(__file__).resolve().parents[1]


def _settings(server: Server, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CLEVER_API_TOKEN", server.simulator.token)
    return Settings(token=server.simulator.token, base_url=server.base_url, data_dir=data_dir)


def _sync(settings: Settings) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def(SYNC_JOB.name)
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_definitions_list_every_model_check_and_a_running_daily_schedule():
    defs = build_definitions(Settings())
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    for record_type in spec.record_types():
        assert f"clever/{record_type}_current" in keys
        assert f"clever/{record_type}_history" in keys
    assert {"lake/clever_events", "raw/events", "raw/snapshots", "raw/baselines"} <= keys
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert ("clever/users_history", "intervals_do_not_overlap") in checks
    assert ("clever/users_current", "grain_unique") in checks
    assert ("lake/clever_events", "cursor_fresh") in checks
    assert ("raw/events", "events_interpretable") in checks
    schedule = defs.resolve_schedule_def(DAILY_SYNC.name)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == SYNC_JOB.name


def test_full_sync_twice_is_idempotent_and_reports_metadata(sim_server, tmp_path, monkeypatch):
    settings = _settings(sim_server, tmp_path, monkeypatch)
    first = _sync(settings)
    assert first.success
    materialized = {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
        for event in first.get_asset_materialization_events()
    }
    extract = materialized["lake/clever_events"]
    assert extract["events_written"].value > 0
    assert extract["cursor_after"].value == sim_server.simulator.newest_event_id
    assert "users" in extract["events_by_type"].value
    assert materialized["clever/users_current"]["dagster/row_count"].value == len(
        sim_server.simulator.truth.current("users")
    )
    evaluations = first.get_asset_check_evaluations()
    assert len(evaluations) == len(
        build_definitions(settings).resolve_asset_graph().asset_check_keys
    )
    before = table_rows(settings.warehouse_path, "clever")

    second = _sync(settings)
    assert second.success
    metadata = {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
        for event in second.get_asset_materialization_events()
    }
    assert metadata["lake/clever_events"]["events_written"].value == 0
    assert metadata["raw/events"]["new_events"].value == 0
    assert table_rows(settings.warehouse_path, "clever") == before
    # Tables left as they were keep their checks' outcomes; views are read again.
    read = _read_by_check(second)
    assert read["clever/users_history:intervals_do_not_overlap"] == UNCHANGED
    assert read["staging/users_states:grain_unique"] == UNCHANGED
    assert read["staging/users_events:grain_unique"] == "every row"


def _read_by_check(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.metadata["read"].value
        for e in result.get_asset_check_evaluations()
        if "read" in e.metadata
    }


def test_incremental_sync_after_the_clock_moves_matches_the_truth(
    sim_server, tmp_path, monkeypatch
):
    settings = _settings(sim_server, tmp_path, monkeypatch)
    assert _sync(settings).success
    sim_server.simulator.advance(events=500)
    second = _sync(settings)
    assert second.success
    read = _read_by_check(second)
    assert read["clever/users_history:intervals_do_not_overlap"] == CHANGED_IDS_ONLY
    assert read["clever/users_history:grain_unique"] == CHANGED_IDS_ONLY
    assert read["clever/users_history:chain_agrees_with_previous_attributes"] == "every row"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        for record_type in spec.record_types():
            ids = {
                row[0] for row in con.sql(f"select id from clever.{record_type}_current").fetchall()
            }
            assert ids == set(sim_server.simulator.truth.current(record_type)), record_type


def test_a_failing_blocking_check_stops_downstream_assets(tmp_path):
    broken = Model(
        key=("clever", "broken"),
        kind="table",
        sql="select 'same-id' as id from range(2)",
        description="One row per id (it is not: the check must catch it).",
        grain=("id",),
        deps=(),
        path=tmp_path / "broken.sql",
    )
    downstream = [
        Model(
            key=("clever", name),
            kind="table",
            sql="select * from clever.broken",
            description="One row per id of clever.broken.",
            grain=("id",),
            deps=(("clever", "broken"),),
            path=tmp_path / f"{name}.sql",
        )
        for name in ("same_step", "other_step")
    ]
    from dagster_duckdb import DuckDBResource

    result = dg.materialize(
        [model_assets("one", [broken, downstream[0]]), model_assets("two", downstream[1:])],
        resources={
            "data_dir": DataDirResource(path=str(tmp_path)),
            "duckdb": DuckDBResource(database=str(tmp_path / "warehouse.duckdb")),
        },
        raise_on_error=False,
    )
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "grain_unique"
    )
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["count"].value == 1
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"clever/broken"}
    assert not result.success


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webserver(tmp_path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "CLEVER_ELT_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    env.pop("CLEVER_API_TOKEN", None)
    (tmp_path / "dagster_home").mkdir()
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    command = [sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml"]
    process = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, "dagster-webserver exited during start-up"
            time.sleep(0.5)
        else:
            pytest.fail("dagster-webserver did not answer within 120 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


GRAPHQL = """
{
  assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name scheduleState {
    status } } } } }
}
"""


def test_webserver_lists_every_asset_check_and_the_schedule(webserver):
    answer = requests.post(f"{webserver}/graphql", json={"query": GRAPHQL}, timeout=60).json()
    nodes = answer["data"]["assetNodes"]
    keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
    expected = build_definitions(Settings()).resolve_asset_graph()
    assert keys == {key.to_user_string() for key in expected.get_all_asset_keys()}
    checks = {
        ("/".join(node["assetKey"]["path"]), check["name"])
        for node in nodes
        for check in node["assetChecksOrError"].get("checks", [])
    }
    assert checks == {
        (key.asset_key.to_user_string(), key.name) for key in expected.asset_check_keys
    }
    schedules = [
        schedule
        for repository in answer["data"]["repositoriesOrError"]["nodes"]
        for schedule in repository["schedules"]
    ]
    assert schedules == [{"name": DAILY_SYNC.name, "scheduleState": {"status": "RUNNING"}}]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the probe of this machine runs it: no sandbox as root, no calls home on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run does)")
def test_asset_graph_pages_show_the_assets_in_a_real_browser(webserver):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{webserver}/asset-groups")
        for group in ("extract", "raw", "staging", "clever", "audit"):
            expect(page.get_by_text(group, exact=True).first).to_be_visible(timeout=60_000)
        page.goto(f"{webserver}/assets/clever/users_history?view=lineage")
        for asset in ("users_history", "users_current", "users_versions"):
            expect(page.get_by_text(asset, exact=True).first).to_be_visible(timeout=60_000)
        browser.close()


def test_cursor_age_is_measured_on_the_api_clock_not_the_local_one(
    sim_server, tmp_path, monkeypatch
):
    settings = _settings(sim_server, tmp_path, monkeypatch)
    result = _sync(settings)
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "cursor_fresh"
    )
    # The simulator's clock is months behind this machine's: only its Date header gives a fresh age.
    assert evaluation.passed, evaluation.metadata["description"].value
    # The timeline's last burst is ~7 days after its default now: 35 days on, it is ~28 days old.
    sim_server.simulator.advance(seconds=35 * 86400)
    stale = next(
        e for e in _sync(settings).get_asset_check_evaluations() if e.check_name == "cursor_fresh"
    )
    assert not stale.passed
    assert stale.severity == dg.AssetCheckSeverity.WARN
