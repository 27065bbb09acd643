"""Shared fixtures: the built-in Clever simulator, in-process and over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clever_elt.simulator import Server, Simulator


@pytest.fixture
def simulator() -> Simulator:
    """A tiny deterministic district (seed 1), clock at its default `now` (start + 38 days)."""
    return Simulator(seed=1, scale="tiny", token="TEST_TOKEN")


@pytest.fixture
def sim_server(simulator: Simulator) -> Iterator[Server]:
    """`simulator` served on 127.0.0.1 at a free port; `.base_url` ends in /v3.1."""
    with simulator.serve(host="127.0.0.1", port=0) as server:
        yield server
