"""`clever-elt run` as a newcomer and cron use it, and the analyst notebook on what it built."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import nbformat
import pytest
import requests
from nbclient import NotebookClient

from clever_elt.api import CleverError
from clever_elt.run import EXIT_INTERRUPTED, summarize
from helpers import (
    child_env,
    dns_says_no_such_host,
    event_ids,
    run_cli,
    sync_env,
    table_rows,
)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "roster_analysis.ipynb"


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {"CLEVER_ELT_DATA_DIR": str(data_dir), **extra}
    return env


@pytest.fixture(scope="module")
def demo_data_dir(tmp_path_factory) -> Path:
    """A data directory after one demo sync (no token: the built-in simulator)."""
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    env = {k: v for k, v in os.environ.items() if k != "CLEVER_API_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "clever_elt.cli", "run"],
        env={**env, "CLEVER_ELT_DATA_DIR": str(data_dir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "new events:" in result.stderr
    assert "clever.users_history" in result.stderr
    # The simulator sends fields the spec does not know: a warning, not an error.
    assert re.search(r"checks passed: \d+   warnings: [1-9]\d*   errors: 0\n", result.stderr)
    return data_dir


def test_demo_run_builds_every_table_and_says_so(demo_data_dir):
    assert (demo_data_dir / "warehouse.duckdb").exists()
    assert list((demo_data_dir / "lake" / "events").glob("district=*/date=*/part-*.parquet"))


def test_run_with_a_refused_token_fails_with_one_clear_line(sim_server, tmp_path):
    result = run_cli(sync_env(tmp_path, sim_server, CLEVER_API_TOKEN="not-the-token"), "run")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "token" in errors[0].lower()
    assert "not-the-token" not in result.stderr + result.stdout


@pytest.mark.skipif(not dns_says_no_such_host(), reason="no resolver to say the name is unknown")
def test_run_against_a_host_that_does_not_exist_fails_at_once_with_one_clear_line(tmp_path):
    env = _env(tmp_path, CLEVER_API_TOKEN="t", CLEVER_API_BASE_URL="https://api.clever.invalid/v3")
    result = run_cli(env, "run")  # no retries: a wrong name does not mend itself
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: the API host api.clever.invalid does not exist (")
    assert errors[0].endswith("); check CLEVER_API_BASE_URL")


def test_run_with_plain_http_to_a_remote_host_is_refused_before_any_request(tmp_path):
    result = run_cli(
        _env(tmp_path, CLEVER_API_TOKEN="t", CLEVER_API_BASE_URL="http://api.clever.com/v3.1"),
        "run",
    )
    assert result.returncode == 2
    assert "https" in result.stderr
    assert not (tmp_path / "lake").exists()


def test_run_with_a_data_dir_that_cannot_be_created_is_refused_before_any_request(tmp_path):
    (tmp_path / "a-file").write_text("")
    result = run_cli(_env(tmp_path / "a-file" / "data"), "run")
    assert result.returncode == 2
    assert " ".join(result.stderr.split()) == (
        f"error: CLEVER_ELT_DATA_DIR cannot be created: {tmp_path / 'a-file' / 'data'}: Not a "
        "directory"
    )


def test_the_error_line_is_one_line_on_a_narrow_console_and_keeps_brackets(tmp_path):
    # Logs are grepped for `error:`: the message must not wrap, nor lose text rich takes as markup.
    data_dir = tmp_path / "a-file" / ("[bold]" + "d" * 150)
    (tmp_path / "a-file").write_text("")
    result = run_cli({**_env(data_dir), "COLUMNS": "60"}, "run")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: CLEVER_ELT_DATA_DIR cannot be created: {data_dir}: Not a directory"
    ]


def test_a_warehouse_held_open_by_an_analyst_fails_the_run_clearly_and_loses_nothing(
    sim_server, tmp_path
):
    env = sync_env(tmp_path, sim_server)
    assert run_cli(env, "run").returncode == 0
    warehouse = tmp_path / "warehouse.duckdb"
    before = event_ids(warehouse)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "open\n"
        sim_server.simulator.advance(events=200)
        result = run_cli(env, "run")
    finally:
        holder.communicate("")  # the analyst closes the notebook
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith(f"error: another process (PID {holder.pid}, ")
    assert "Close that connection" in result.stderr
    assert run_cli(env, "run").returncode == 0
    after = event_ids(warehouse)
    assert len(after) == len(set(after)) == len(before) + 200
    assert sim_server.simulator.newest_event_id in after


def test_ctrl_c_ends_the_run_with_one_line_and_the_next_run_finishes_the_sync(sim_server, tmp_path):
    env = sync_env(tmp_path / "interrupted", sim_server)
    run = subprocess.Popen(
        [sys.executable, "-m", "clever_elt.cli", "run"],
        env=child_env(env),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    for line in run.stderr:  # without a terminal, one timestamped line per message
        lines.append(line)
        if " rows in " in line:  # the models have begun
            run.send_signal(signal.SIGINT)
            break
    lines += run.stderr.readlines()
    assert run.wait(timeout=120) == EXIT_INTERRUPTED, "".join(lines)[-2000:]
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [
        "error: interrupted before the sync finished. Everything committed before is kept: run "
        "again to go on.\n"
    ]
    assert run_cli(env, "run").returncode == 0
    reference = tmp_path / "reference"
    assert run_cli(sync_env(reference, sim_server), "run").returncode == 0
    interrupted = tmp_path / "interrupted" / "warehouse.duckdb"
    assert event_ids(interrupted) == event_ids(reference / "warehouse.duckdb")
    assert table_rows(interrupted, "clever") == table_rows(reference / "warehouse.duckdb", "clever")


# An analyst's session: the warehouse open read-only until stdin closes.
HOLD_OPEN = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
sys.stdin.read()
"""


def test_the_error_shown_is_clever_elts_own_message_not_the_library_error_it_wraps():
    """Once the client and Dagster's retries are spent on an unreachable API, the user reads the
    client's summary of what failed, not urllib3's repr of a refused connection."""

    @dg.asset
    def unreachable() -> None:
        try:
            try:
                raise requests.ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=1)")
            except requests.ConnectionError as exc:
                raise CleverError("GET /v3.1/districts failed 8 times; last: refused") from exc
        except CleverError as exc:
            raise dg.RetryRequested(max_retries=1, seconds_to_wait=0) from exc

    result = dg.materialize([unreachable], raise_on_error=False)
    assert summarize(result).failure == "GET /v3.1/districts failed 8 times; last: refused"


def test_help_explains_the_settings():
    result = run_cli({}, "run", "--help")
    assert result.returncode == 0
    for setting in ("CLEVER_API_TOKEN", "CLEVER_API_BASE_URL", "CLEVER_ELT_DATA_DIR"):
        assert setting in result.stdout


def test_analyst_notebook_executes_on_a_demo_warehouse(demo_data_dir, monkeypatch):
    monkeypatch.setenv("CLEVER_ELT_DATA_DIR", str(demo_data_dir))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "commit the notebook with outputs stripped"
    )
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
        # The kernel is still alive, as an analyst's is: it must not keep a sync from writing.
        duckdb.connect(str(demo_data_dir / "warehouse.duckdb")).close()
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the enrollment chart is drawn"
