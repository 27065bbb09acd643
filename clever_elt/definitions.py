"""The Dagster code location (`dagster dev`, workspace.yaml): `Definitions` for the environment."""

from clever_elt.defs.build import build_definitions
from clever_elt.settings import Settings

defs = build_definitions(Settings.from_env())
