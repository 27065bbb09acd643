"""How fast the simulator generates a world and serves it to a bare `requests` client.

The server runs as its own process (`clever-elt demo-server`, as benchmarks use it); the client
follows `next` links at the given page size, reading only each page's trailing `links`.

    .venv/bin/python -m benchmarks.simulator_benchmark                 # 1,000,000-event world
    .venv/bin/python -m benchmarks.simulator_benchmark --scale 200000 --limit 1000
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time

import orjson
import requests

log = logging.getLogger("simulator_benchmark")
TOKEN = "BENCH_TOKEN"


def _next_uri(body: bytes) -> str | None:
    # `links` is the page's last key: parse only that tail, not the 10 MB of events before it.
    links = orjson.loads(body[body.rindex(b'"links":') + 8 : -1])
    return next((link["uri"] for link in links if link["rel"] == "next"), None)


def pull(origin: str, limit: int, parse: bool) -> tuple[int, int, float]:
    """Every retained event, oldest first: (events, bytes, seconds)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    uri: str | None = f"/v3.1/events?limit={limit}"
    events = size = 0
    started = time.perf_counter()
    while uri:
        response = session.get(origin + uri, timeout=120)
        response.raise_for_status()
        body = response.content
        size += len(body)
        count = len(orjson.loads(body)["data"]) if parse else body.count(b'"uri":"/v3.1/events/')
        if not count:
            break
        events += count
        uri = _next_uri(body)
    return events, size, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="1000000", help="events in the whole timeline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=int, default=10_000, help="page size")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    command = [sys.executable, "-m", "clever_elt.cli", "demo-server", "--port", "0"]
    command += ["--scale", args.scale, "--seed", str(args.seed), "--token", TOKEN]
    command += ["--rate-limit", "1000000"]
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip().split("=", 1)[1]
        generated_s = time.perf_counter() - started
        origin = base_url.removesuffix("/v3.1")
        log.info("world of %s events ready in %.1fs at %s", args.scale, generated_s, base_url)
        report: dict[str, object] = {
            "scale": args.scale,
            "page_size": args.limit,
            "startup_seconds_incl_generation": round(generated_s, 1),
        }
        for round_no in range(1, args.rounds + 1):
            for parse in (False, True):
                events, size, seconds = pull(origin, args.limit, parse)
                label = f"round{round_no}_{'orjson_parse' if parse else 'bare'}"
                report[label] = {
                    "events": events,
                    "seconds": round(seconds, 2),
                    "events_per_s": round(events / seconds),
                    "mib_per_s": round(size / seconds / 2**20, 1),
                }
                log.info("%s: %s", label, report[label])
    finally:
        server.terminate()
        server.wait(timeout=30)
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
