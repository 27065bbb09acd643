"""Exactly once under SIGKILL: an extraction subprocess is killed at many random points (before or
after any file write, fsync, rename or HTTP request), then run again; in the end the lake holds
every event the simulator served exactly once, and one complete baseline equal to the truth."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import duckdb
import orjson

from clever_elt import spec
from clever_elt.lake.layout import Lake
from clever_elt.lake.snapshots import baseline_manifests
from clever_elt.simulator import Faults, Simulator

SEED = 20261126
KILLS = 24
TOKEN = "KILL_TEST_TOKEN"

# Runs one extraction; with KILL_AT = k > 0 it SIGKILLs itself at the k-th tripwire, a tripwire
# sitting just before and just after every Parquet write, fsync, rename and HTTP request.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import pyarrow.parquet as pq
    import requests
    from clever_elt.api import CleverClient
    from clever_elt.extract import extract
    from clever_elt.lake.layout import Lake

    base_url, lake_dir, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trips = [0]

    def trip():
        trips[0] += 1
        if trips[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def tripwired(fn):
        def wrapped(*args, **kwargs):
            trip()
            result = fn(*args, **kwargs)
            trip()
            return result
        return wrapped

    os.replace = tripwired(os.replace)
    os.fsync = tripwired(os.fsync)
    pq.write_table = tripwired(pq.write_table)
    requests.Session.get = tripwired(requests.Session.get)
    with CleverClient(base_url, os.environ["TOKEN"], page_size=100, sleep=lambda s: None) as c:
        result = extract(c, Lake(lake_dir))
    print("TRIPS", trips[0], "GAP", result.gap)
    """
)


def run_child(base_url: str, lake_dir: str, kill_at: int) -> tuple[int, int]:
    """(return code, tripwires passed when it completed)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, base_url, lake_dir, str(kill_at)],
        capture_output=True,
        text=True,
        env={**os.environ, "TOKEN": TOKEN},
        timeout=120,
    )
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"extraction failed:\n{done.stderr}")
    if done.returncode == 0:
        words = done.stdout.split()
        assert words[-1] == "False", "an unexpected gap"
        return 0, int(words[words.index("TRIPS") + 1])
    return done.returncode, 0


def test_sigkill_at_random_points_never_loses_or_duplicates_an_event(tmp_path):
    rng = random.Random(SEED)
    simulator = Simulator(seed=4, scale="tiny", token=TOKEN)
    simulator.faults = Faults(rate_5xx=0.03, rate_truncated=0.03, seed=SEED)
    first_oldest = simulator.oldest_retained_event_id
    baseline_at = simulator.now
    lake = Lake(tmp_path / "lake")
    kills = completions = 0
    trips_per_run = 400  # a first run's order of magnitude; refined by each completed run
    with simulator.serve() as server:
        while kills < KILLS:
            # The first kills land in the baseline (its ~100 tripwires come first in a run).
            kill_at = rng.randint(1, 100 if kills < 4 else trips_per_run)
            code, trips = run_child(server.base_url, str(lake.root), kill_at)
            if code:
                kills += 1
                continue
            completions += 1
            trips_per_run = trips
            # New work for the next runs; small steps so the cursor is never purged.
            simulator.advance(events=rng.randint(150, 400))
        code, _ = run_child(server.base_url, str(lake.root), 0)
        assert code == 0

    served = {e["id"]: e for e in simulator.served_events() if e["id"] >= first_oldest}
    rows = (
        duckdb.connect()
        .sql(f"select event_id, raw from read_parquet('{lake.events_dir}/**/*.parquet')")
        .fetchall()
    )
    ids = [event_id for event_id, _ in rows]
    assert len(ids) == len(set(ids)), "an event was written twice"
    assert {event_id: orjson.loads(raw) for event_id, raw in rows} == served
    assert completions >= 2, "the kills should leave room for whole runs"

    manifests = baseline_manifests(lake, simulator.district_id)
    assert [m.reason for m in manifests] == ["initial"]
    for record_type in spec.record_types():
        glob = lake.snapshot_dir(record_type, simulator.district_id, manifests[0].taken)
        snapshot = (
            duckdb.connect()
            .sql(f"select object_id, raw from read_parquet('{glob}/*.parquet')")
            .fetchall()
        )
        assert {i: orjson.loads(raw) for i, raw in snapshot} == simulator.truth.current(
            record_type, baseline_at
        )
