"""Warehouse benchmark: load + full rebuild of every model over a lake of ~1,000,000 events, then
load + incremental build of the newest ~10,000 events on top.

The lake is a simulator world written with the lake's own writers (pages decoded by
EventPageDecoder, a baseline by RecordPageDecoder), cached under data/bench/ because generating
it takes minutes. The timed part runs in a child process on a fresh DuckDB file, so its peak
resident memory is its own. The newest event files (>= --incremental-events events) are held back
from the first build and added for the second. Beside it, in the same invocation, the floor: the
same DuckDB copying the lake's event files into a table as they are, which any load costs at least.
Run: `.venv/bin/python -m benchmarks.warehouse_benchmark`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.common import own_peak_rss_bytes
from clever_elt import spec
from clever_elt.lake.events import EventPageDecoder, write_events
from clever_elt.lake.layout import Lake
from clever_elt.lake.snapshots import BaselineManifest, RecordPageDecoder, write_records

log = logging.getLogger("warehouse_benchmark")

ROOT = Path(__file__).resolve().parents[1]
PAGE = 10_000
BASELINE_PAGE = 10_000
TARGET_EVENTS_PER_S = 200_000


def build_lake(lake_dir: Path, events: int, seed: int) -> int:
    """Write a simulator world of about `events` events (all of them) plus a baseline at its end."""
    from clever_elt.simulator import Simulator

    started = time.perf_counter()
    sim = Simulator(seed=seed, scale=events, token="BENCH")
    timeline = sim.timeline
    sim.set_now(sim.start)
    sim.advance(events=len(timeline))
    log.info("generated %d events in %.0fs", len(timeline), time.perf_counter() - started)
    tmp = lake_dir.with_name(lake_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    lake = Lake(tmp)
    district = sim.district_id
    taken = "20260915T000000000000Z"
    decoder = RecordPageDecoder()
    counts = {}
    for record_type in spec.record_types():
        records = list(sim.truth.current(record_type).values())
        counts[record_type] = len(records)
        for start in range(0, len(records), BASELINE_PAGE):
            items = [
                {"data": r, "uri": f"/v3.1/{record_type}/{r['id']}"}
                for r in records[start : start + BASELINE_PAGE]
            ]
            body = json.dumps({"data": items, "links": []}).encode()
            write_records(lake, record_type, district, taken, decoder(body))
    BaselineManifest(
        district=district,
        taken=taken,
        reason="initial",
        anchor_event_id=sim.newest_event_id,
        counts=counts,
    ).write(lake)
    events_decoder = EventPageDecoder()
    for start in range(0, len(timeline), PAGE):
        body = b'{"data":[' + b",".join(timeline.items[start : start + PAGE]) + b'],"links":[]}'
        write_events(lake, district, events_decoder(body))
    tmp.rename(lake_dir)
    log.info("wrote the lake in %.0fs", time.perf_counter() - started)
    return len(timeline)


def _hold_back(lake_dir: Path, work_lake: Path, events: int) -> list[tuple[Path, Path]]:
    """Link the lake into `work_lake` without its newest event files holding >= `events` events;
    returns (source, destination) of the files held back."""
    files = sorted(
        (lake_dir / "events").rglob("part-*.parquet"), key=lambda p: p.name.split("-")[1]
    )
    held: list[Path] = []
    while files and sum(pq.ParquetFile(p).metadata.num_rows for p in held) < events:
        held.append(files.pop())
    shutil.copytree(lake_dir, work_lake, copy_function=os.link, ignore=_skip(set(held)))
    return [(p, work_lake / p.relative_to(lake_dir)) for p in held]


def _skip(held: set[Path]):
    def ignore(directory: str, names: list[str]) -> list[str]:
        return [n for n in names if Path(directory) / n in held]

    return ignore


def measure(lake_dir: Path, work_dir: Path, incremental_events: int) -> dict:
    """Time load + build of every model on a fresh DuckDB file, then load + incremental build of
    the held-back events (run in a child process)."""
    from clever_elt.warehouse import Warehouse

    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    work_lake = work_dir / "lake"
    held = _hold_back(lake_dir, work_lake, incremental_events)
    warehouse = Warehouse(work_dir / "warehouse.duckdb", work_lake, work_dir / "compiled")
    warehouse.models()  # parsing the model files is not the work being measured
    started = time.perf_counter()
    loaded = warehouse.load()
    load_s = time.perf_counter() - started
    results = warehouse.build()
    total_s = time.perf_counter() - started
    for source, destination in held:
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, destination)
    started = time.perf_counter()
    more = warehouse.load()
    more_load_s = time.perf_counter() - started
    more_results = warehouse.build()
    more_s = time.perf_counter() - started
    return {
        "events": loaded.new_events,
        "snapshot_rows": loaded.new_snapshot_rows,
        "load_s": round(load_s, 2),
        "models_s": round(total_s - load_s, 2),
        "total_s": round(total_s, 2),
        "events_per_s": round(loaded.new_events / total_s),
        "incremental_events": more.new_events,
        "incremental_load_s": round(more_load_s, 2),
        "incremental_total_s": round(more_s, 2),
        "incremental_share": round(more_s / total_s, 3),
        "peak_rss_mib": round(own_peak_rss_bytes() / 2**20),
        "models": {name: round(r.duration_s, 2) for name, r in results.items()},
        "incremental_models": {name: round(r.duration_s, 2) for name, r in more_results.items()},
        "history_rows": sum(r.rows for name, r in results.items() if name.endswith("_history")),
    }


def measure_floor(lake_dir: Path, work_dir: Path) -> dict:
    """The floor of any load: the same DuckDB, with the warehouse's settings, copying every column
    of the lake's event files into one table as they are (no parsing, no deduplication) and
    checkpointing it (run in a child process)."""
    from clever_elt.warehouse import connect

    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    files = [str(p) for p in sorted((lake_dir / "events").rglob("part-*.parquet"))]
    started = time.perf_counter()
    with connect(work_dir / "floor.duckdb") as con:
        con.execute("create table events as select * from read_parquet($files)", {"files": files})
        con.execute("checkpoint")
        events = con.execute("select count(*) from events").fetchall()[0][0]
    seconds = time.perf_counter() - started
    shutil.rmtree(work_dir)
    return {"events": events, "seconds": round(seconds, 2), "events_per_s": round(events / seconds)}


def _child(mode: str, args: argparse.Namespace) -> dict:
    """Run `--measure` or `--floor` in a child process (its memory is its own); its JSON result."""
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.warehouse_benchmark",
            mode,
            f"--events={args.events}",
            f"--seed={args.seed}",
            f"--incremental-events={args.incremental_events}",
            f"--data-dir={args.data_dir}",
        ],
        check=True,
        cwd=ROOT,
        stdout=subprocess.PIPE,  # the child's log goes to stderr, as it runs
        text=True,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--incremental-events", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lake_dir = args.data_dir / f"warehouse-lake-{args.events}-seed{args.seed}"
    work_dir = args.data_dir / "warehouse-run"
    if args.measure or args.floor:
        if args.floor:
            result = measure_floor(lake_dir, args.data_dir / "warehouse-floor")
        else:
            result = measure(lake_dir, work_dir, args.incremental_events)
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    if not lake_dir.exists():
        build_lake(lake_dir, args.events, args.seed)
    floor = _child("--floor", args)
    result = _child("--measure", args)
    incremental = result.pop("incremental_models")
    for name, seconds in result.pop("models").items():
        log.info("  %-40s %6.2fs  incremental %6.2fs", name, seconds, incremental[name])
    result["floor"] = floor
    result["ratio_to_floor"] = round(result["events_per_s"] / floor["events_per_s"], 3)
    log.info(json.dumps(result))
    log.info(
        "floor: copying the lake's %d events into a DuckDB table as they are: %.1fs = %d events/s",
        floor["events"],
        floor["seconds"],
        floor["events_per_s"],
    )
    verdict = "meets" if result["events_per_s"] >= TARGET_EVENTS_PER_S else "misses"
    log.info(
        "load + all models: %d events in %.1fs = %d events/s (%s the %d target), peak RSS %d MiB",
        result["events"],
        result["total_s"],
        result["events_per_s"],
        verdict,
        TARGET_EVENTS_PER_S,
        result["peak_rss_mib"],
    )
    log.info("load + all models run at %.3f of the floor's events/s", result["ratio_to_floor"])
    log.info(
        "then %d more events: load + build in %.1fs = %.1f%% of the full build",
        result["incremental_events"],
        result["incremental_total_s"],
        100 * result["incremental_share"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
