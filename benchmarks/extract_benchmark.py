"""Extraction speed against the simulator on loopback, beside a bare download of the same pages.

The simulator runs as its own process (`clever-elt demo-server`) so its memory is not counted; each
extraction runs in a child process that reports its own peak RSS (its VmHWM) and CPU time. Bare
downloads and extractions (each into an empty lake) alternate, `--rounds` of each, and each side
counts its fastest run: the machine is shared, and taking the best of several runs on one side
only would bias the ratio.

    .venv/bin/python -m benchmarks.extract_benchmark              # about 1,000,000 events
    .venv/bin/python -m benchmarks.extract_benchmark --events 50000
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import requests

from benchmarks.common import own_peak_rss_bytes
from clever_elt.envelope import next_page_uri

log = logging.getLogger("extract_benchmark")

ROOT = Path(__file__).resolve().parents[1]

TOKEN = "BENCH_TOKEN"
# Retention keeps about 60% of a default simulator timeline visible at its default clock.
RETAINED_FRACTION = 0.6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="about this many events")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="bare downloads and extractions")
    parser.add_argument("--child", nargs=3, metavar=("BASE_URL", "DATA_DIR", "PAGE_SIZE"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.child:
        return _extract_child(*args.child)

    scale = math.ceil(args.events / RETAINED_FRACTION)
    bares, extracts = [], []
    with _server(scale, args.seed) as server:
        for _ in range(args.rounds):
            bares.append(_bare_download(server.base_url, args.page_size))
            with tempfile.TemporaryDirectory() as data_dir:
                extracts.append(_extract_in_child(server, data_dir, args.page_size))

    bare = min(bares, key=lambda run: run["seconds"])
    extract = min(extracts, key=lambda run: run["pull_s"])
    usage = extract["usage"]
    events = extract["events_written"]
    extract_rate = events / extract["duration_s"]
    bare_rate = bare["events"] / bare["seconds"]
    report = {
        "events": events,
        "pages": extract["pages"],
        "extract_seconds": round(extract["duration_s"], 2),
        "extract_events_per_s": round(extract_rate),
        "events_pull_seconds": round(extract["pull_s"], 2),
        "events_pull_seconds_all_rounds": [round(run["pull_s"], 2) for run in extracts],
        "events_pull_events_per_s": round(events / extract["pull_s"]),
        "baseline_seconds": round(extract["duration_s"] - extract["pull_s"], 2),
        "bare_download_seconds": [round(run["seconds"], 2) for run in bares],
        "bare_download_events_per_s": round(bare_rate),
        # The events pull downloads the bare client's pages; the whole run adds the baseline's.
        "ratio_pull_to_bare": round(events / extract["pull_s"] / bare_rate, 3),
        "ratio_extract_to_bare": round(extract_rate / bare_rate, 3),
        # CPU seconds hardly depend on what else the machine runs (2 cores: at most 2 per second).
        "extract_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "events_pull_cpu_seconds_all_rounds": [round(run["pull_cpu_s"], 2) for run in extracts],
        "simulator_cpu_seconds_during_extract": round(extract["server_cpu_s"], 2),
        "peak_rss_mib": round(extract["peak_rss_bytes"] / 2**20, 1),
        "lake_mib": round(extract["bytes_written"] / 2**20, 1),
    }
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


class _server:
    """`clever-elt demo-server` on a free loopback port, stopped with SIGTERM on exit."""

    def __init__(self, scale: int, seed: int):
        self.scale, self.seed = scale, seed

    def __enter__(self) -> _server:
        command = [sys.executable, "-m", "clever_elt.cli", "demo-server", "--port", "0"]
        command += ["--scale", str(self.scale), "--seed", str(self.seed), "--token", TOKEN]
        log.info("starting the simulator (scale %d); generating takes a while", self.scale)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        for line in self.process.stdout:
            if line.startswith("CLEVER_API_BASE_URL="):
                self.base_url = line.strip().split("=", 1)[1]
                return self
        raise RuntimeError("the simulator exited before printing its URL")

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)

    def cpu_seconds(self) -> float:
        """User + system CPU the simulator process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bare_download(base_url: str, page_size: int) -> dict:
    """The floor: GET every events page by its `next` link; no parsing beyond the link."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    origin = base_url.rsplit("/v3.1", 1)[0]
    url: str | None = f"{base_url}/events?limit={page_size}"
    pages = nbytes = events = 0
    started = time.perf_counter()
    while url:
        with session.get(url, stream=True, timeout=(5, 120)) as response:
            response.raise_for_status()
            body = response.raw.read()
        pages += 1
        nbytes += len(body)
        events += body.count(b'"uri":"/v3.1/events/')
        link = next_page_uri(body)
        url = origin + link if link else None
    seconds = time.perf_counter() - started
    log.info("bare download: %d events, %d pages, %.0f MB in %.1fs", events, pages, nbytes / 1e6,
             seconds)  # fmt: skip
    return {"events": events, "seconds": seconds}


def _extract_in_child(server: _server, data_dir: str, page_size: int) -> dict:
    """One extraction into an empty lake: the child's report, its resource usage (`usage`) and
    the simulator's CPU seconds meanwhile (`server_cpu_s`)."""
    command = [sys.executable, "-m", "benchmarks.extract_benchmark"]
    command += ["--child", server.base_url, data_dir, str(page_size)]
    server_cpu = server.cpu_seconds()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("the extraction failed")
    server_cpu = server.cpu_seconds() - server_cpu
    return orjson.loads(output) | {"usage": usage, "server_cpu_s": server_cpu}


def _extract_child(base_url: str, data_dir: str, page_size: str) -> int:
    from clever_elt.api import CleverClient
    from clever_elt.extract import extract
    from clever_elt.lake.layout import Lake

    baseline_done = [time.monotonic(), time.process_time()]

    def progress(pages: int, events: int) -> None:
        # Baseline pages come first and carry no events: the last of them ends the baseline.
        if not events:
            baseline_done[:] = [time.monotonic(), time.process_time()]

    with CleverClient(base_url, TOKEN, page_size=int(page_size)) as client:
        result = extract(client, Lake(Path(data_dir) / "lake"), progress=progress)
    pull_s = time.monotonic() - baseline_done[0]
    pull_cpu_s = time.process_time() - baseline_done[1]
    report = {
        "events_written": result.events_written,
        "pages": result.pages,
        "duration_s": result.duration_s,
        "pull_s": pull_s,
        "pull_cpu_s": pull_cpu_s,
        "bytes_written": result.bytes_written,
        "peak_rss_bytes": own_peak_rss_bytes(),
    }
    sys.stdout.write(orjson.dumps(report).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
