"""The built-in Clever simulator: a deterministic district, its event stream, and an HTTP API.

Used by tests and the demo, never by the pipeline's own layers.
"""

from clever_elt.simulator.core import Faults, Simulator
from clever_elt.simulator.server import Server
from clever_elt.simulator.truth import Truth, Version

__all__ = ["Faults", "Server", "Simulator", "Truth", "Version"]
