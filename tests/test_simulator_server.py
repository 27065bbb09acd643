"""`clever-elt demo-server` as a real subprocess: prints how to reach it, serves, stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import requests


def start_demo_server(*extra: str) -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "clever_elt.cli", "demo-server", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    settings = {}
    for _ in range(2):
        line = proc.stdout.readline()
        assert "=" in line, f"demo-server printed {line!r}; stderr: {proc.stderr.read()}"
        key, value = line.strip().split("=", 1)
        settings[key] = value
    return proc, settings


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_demo_server_prints_url_and_token_serves_and_exits_0_on_signal(stop_signal):
    proc, settings = start_demo_server("--scale", "tiny", "--token", "T0K", "--seed", "3")
    try:
        base_url, token = settings["CLEVER_API_BASE_URL"], settings["CLEVER_API_TOKEN"]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v3.1")
        assert token == "T0K"
        page = requests.get(
            base_url + "/events?limit=5", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert page.status_code == 200 and len(page.json()["data"]) == 5
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_demo_server_switches_reach_the_simulator():
    proc, settings = start_demo_server(
        "--scale", "tiny", "--previous-attributes-at", "top", "--fault-5xx", "1.0"
    )
    try:
        base = settings["CLEVER_API_BASE_URL"]
        auth = {"Authorization": f"Bearer {settings['CLEVER_API_TOKEN']}"}
        assert requests.get(base + "/events", headers=auth, timeout=10).status_code >= 500
        origin = base.removesuffix("/v3.1")
        requests.post(origin + "/_sim/faults?rate_5xx=0", timeout=10)
        items = requests.get(base + "/events?limit=500", headers=auth, timeout=10).json()["data"]
        updates = [i["data"] for i in items if i["data"]["type"].endswith(".updated")]
        assert updates and all("previous_attributes" in event for event in updates)
        assert all("previous_attributes" not in event["data"] for event in updates)
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_demo_server_rejects_an_unknown_scale_with_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "clever_elt.cli", "demo-server", "--port", "0", "--scale", "huge"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "scale" in result.stderr
