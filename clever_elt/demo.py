"""Demo mode: with no token, sync from the built-in simulator, served on a free loopback port.

The simulated district's timeline is anchored at the first demo run (kept in the data directory) and
its clock is the wall clock, so repeated runs see the same district and new events as days pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clever_elt.lake.layout import write_bytes_atomic
from clever_elt.simulator import Server, Simulator
from clever_elt.simulator.core import DEFAULT_NOW_AFTER

log = logging.getLogger(__name__)

DEMO_FILE = "demo_simulator.json"
DEMO_TOKEN = "DEMO_TOKEN"


@dataclass(frozen=True)
class DemoSettings:
    seed: int
    scale: str
    anchor: datetime  # the wall-clock time of the first demo run

    @property
    def start(self) -> datetime:
        """Timeline start: the first run sees the simulator's default amount of history."""
        return self.anchor - DEFAULT_NOW_AFTER


def demo_settings(data_dir: Path, wall: datetime) -> DemoSettings:
    """The demo district of this data directory, created on first use."""
    path = data_dir / DEMO_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        return DemoSettings(saved["seed"], saved["scale"], datetime.fromisoformat(saved["anchor"]))
    settings = DemoSettings(seed=1, scale="demo", anchor=wall)
    data = {"seed": settings.seed, "scale": settings.scale, "anchor": wall.isoformat()}
    write_bytes_atomic(path, json.dumps(data, indent=2).encode())
    return settings


@contextmanager
def demo_server(data_dir: Path, wall: datetime | None = None) -> Iterator[Server]:
    wall = wall or datetime.now(UTC)
    settings = demo_settings(data_dir, wall)
    simulator = Simulator(
        seed=settings.seed, scale=settings.scale, token=DEMO_TOKEN, start=settings.start, now=wall
    )
    with simulator.serve(host="127.0.0.1", port=0) as server:
        log.info("demo mode (no CLEVER_API_TOKEN): built-in simulator at %s", server.base_url)
        yield server
