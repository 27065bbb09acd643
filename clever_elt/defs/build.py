"""Builds the project's `Definitions` for one set of settings (the code location and the CLI)."""

from __future__ import annotations

import dagster as dg

from clever_elt.defs.assets import build_assets
from clever_elt.defs.resources import resources_from_settings
from clever_elt.defs.schedules import DAILY_SYNC, SYNC_JOB
from clever_elt.settings import Settings
from clever_elt.warehouse import Warehouse


def build_definitions(
    settings: Settings, loggers: dict[str, dg.LoggerDefinition] | None = None
) -> dg.Definitions:
    models = Warehouse(settings.warehouse_path, settings.lake_dir, settings.data_dir / "compiled")
    return dg.Definitions(
        assets=build_assets(models),
        jobs=[SYNC_JOB],
        schedules=[DAILY_SYNC],
        resources=resources_from_settings(settings),
        # DuckDB has one writer: steps run one after another in the run's own process.
        executor=dg.in_process_executor,
        loggers=loggers,
    )
