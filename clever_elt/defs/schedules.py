"""The daily full sync: every asset and check, one run at a time (see dagster.yaml)."""

from __future__ import annotations

import dagster as dg

SYNC_JOB = dg.define_asset_job(
    "clever_sync",
    selection=dg.AssetSelection.all(),
    description="One incremental sync: extract new events, load raw, rebuild every model, check.",
    tags={"dagster/max_retries": "1"},
)

DAILY_SYNC = dg.ScheduleDefinition(
    name="clever_daily_sync",
    job=SYNC_JOB,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 06:00 UTC, well inside Clever's 30-day event retention.",
)
