"""The asset graph: extract (the lake), load (`raw.*`), and one asset per SQL model with its checks.

Bodies only call the layers below; every model asset comes from one factory, which builds the
models of one record type in one step.
"""

from collections.abc import Iterator

import dagster as dg
from dagster_duckdb import DuckDBResource

from clever_elt.api import (
    CleverAuthError,
    CleverError,
    CleverNotFoundError,
    CleverUnknownHostError,
)
from clever_elt.defs.metadata import (
    check_result,
    cursor_age_outcome,
    extract_metadata,
    table_metadata,
)
from clever_elt.defs.resources import CleverApiResource, DataDirResource
from clever_elt.extract import extract
from clever_elt.lock import data_dir_lock
from clever_elt.warehouse import Model, Warehouse, check_state
from clever_elt.warehouse.checks import checks_for, raw_checks
from clever_elt.warehouse.models import Key

EXTRACT_KEY = dg.AssetKey(["lake", "clever_events"])
RAW_TABLES = {
    "events": "One row per Clever event id, deduplicated, with the event's object and "
    "previous_attributes as JSON.",
    "snapshots": "One row per record of each Data-API baseline (district, record type, taken).",
    "baselines": "One row per complete Data-API baseline: when, why (initial or resync), and "
    "where the event stream stood.",
}
RAW_EVENTS_KEY = dg.AssetKey(["raw", "events"])
# A failure of these makes every table built on top wrong, so downstream assets wait for them.
BLOCKING_CHECKS = {"grain_unique", "event_id_unique", "intervals_do_not_overlap"}
TRANSIENT_RETRIES = 3
TRANSIENT_WAIT_S = 60
PROGRESS_EVERY_PAGES = 10


def _check_specs(key: dg.AssetKey, names: list[str]) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=key, blocking=name in BLOCKING_CHECKS) for name in names]


@dg.asset(
    key=EXTRACT_KEY,
    group_name="extract",
    kinds={"parquet"},
    description="The Parquet lake of Clever events (one row per event, full JSON kept) and "
    "Data-API baselines; each run appends what is new after the cursor.",
    check_specs=[dg.AssetCheckSpec("cursor_fresh", asset=EXTRACT_KEY)],
)
def clever_events(
    context: dg.AssetExecutionContext, clever: CleverApiResource, data_dir: DataDirResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    def progress(pages: int, events: int) -> None:
        if pages % PROGRESS_EVERY_PAGES == 0:
            context.log.info(f"extract: {pages} pages, {events:,} events")

    try:
        with data_dir_lock(data_dir.root), clever.client(data_dir.root) as client:
            result = extract(client, data_dir.lake, progress=progress)
    except (CleverAuthError, CleverNotFoundError, CleverUnknownHostError):
        raise  # a refused token or a wrong URL does not mend itself
    except CleverError as exc:
        # The client already retried; the API may be back in a minute. Nothing half-done is lost:
        # the cursor is whatever the lake durably holds.
        if context.retry_number < TRANSIENT_RETRIES:
            context.log.warning(
                f"extract: {exc}; the step runs again in {TRANSIENT_WAIT_S} s "
                f"(retry {context.retry_number + 1} of {TRANSIENT_RETRIES})"
            )
        raise dg.RetryRequested(
            max_retries=TRANSIENT_RETRIES, seconds_to_wait=TRANSIENT_WAIT_S
        ) from exc
    if result.gap:
        context.log.warning(
            f"cursor {result.cursor_before} had expired: events were missed; a resync baseline "
            f"was taken ({result.baseline.taken if result.baseline else '?'})"
        )
    context.log.info(
        f"extract: {result.events_written:,} events in {result.pages} pages, "
        f"{result.duration_s:.1f} s"
    )
    yield dg.MaterializeResult(metadata=extract_metadata(result))
    yield check_result(
        "cursor_fresh", cursor_age_outcome(result.cursor_after, result.api_now), EXTRACT_KEY
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["raw", table], deps=[EXTRACT_KEY], group_name="raw", kinds={"duckdb"}, description=text
        )
        for table, text in RAW_TABLES.items()
    ],
    check_specs=_check_specs(RAW_EVENTS_KEY, list(raw_checks())),
)
def raw_tables(
    context: dg.AssetExecutionContext, data_dir: DataDirResource, duckdb: DuckDBResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    warehouse = data_dir.warehouse(duckdb)
    with data_dir_lock(data_dir.root):
        loaded = warehouse.load()
        context.log.info(
            f"load: {loaded.new_events:,} new events from {loaded.new_files} files "
            f"({loaded.duplicate_events:,} duplicates skipped)"
        )
        with warehouse.connect() as con:
            for table in RAW_TABLES:
                rows = con.sql(f"select count(*) from raw.{table}").fetchall()[0][0]
                metadata = table_metadata(con, f"raw.{table}", rows, 0.0)
                if table == "events":
                    metadata |= {
                        "new_events": loaded.new_events,
                        "duplicate_events": loaded.duplicate_events,
                        "new_files": loaded.new_files,
                    }
                yield dg.MaterializeResult(asset_key=["raw", table], metadata=metadata)
            for name, check in raw_checks().items():
                yield check_result(name, check(con), RAW_EVENTS_KEY)


def model_assets(name: str, models: list[Model]) -> dg.AssetsDefinition:
    """Models built in one step, in dependency order, each still its own asset (key = [schema,
    table], deps from its parsed SQL) with its own checks. One step per record type rather than
    per table: Dagster's per-step cost, paid some fifty times, was most of an incremental run.

    A failed blocking check stops the models built on that table in this step, and fails the
    step, which stops the other steps built on it.
    """
    keys = {model.key: dg.AssetKey(list(model.key)) for model in models}
    checks = {model.key: checks_for(model) for model in models}

    @dg.multi_asset(
        name=f"{name}_models",
        specs=[
            dg.AssetSpec(
                keys[model.key],
                deps=[dg.AssetKey(list(dep)) for dep in model.deps],
                group_name=model.key[0],
                kinds={"duckdb", "sql"},
                description=model.description,
                metadata={
                    "kind": model.kind,
                    "grain": ", ".join(model.grain),
                    "sql": str(model.path),
                },
                skippable=True,
            )
            for model in models
        ],
        check_specs=[
            spec
            for model in models
            for spec in _check_specs(keys[model.key], list(checks[model.key]))
        ],
        can_subset=True,
    )
    def _models(
        context: dg.AssetExecutionContext, data_dir: DataDirResource, duckdb: DuckDBResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        warehouse = data_dir.warehouse(duckdb)
        selected_checks = context.selected_asset_check_keys
        failed: set[Key] = set()
        with data_dir_lock(data_dir.root), warehouse.connect() as con:
            ledger = check_state.CheckLedger(con)
            for model in models:
                key = keys[model.key]
                if key not in context.selected_asset_keys:
                    continue
                if failed.intersection(model.deps):
                    failed.add(model.key)
                    context.log.warning(f"{model.name}: not built, a table it reads failed a check")
                    continue
                result = warehouse.materialize(model, con)
                context.log.info(f"{model.name}: {result.rows:,} rows in {result.duration_s:.2f} s")
                yield dg.MaterializeResult(
                    asset_key=key,
                    metadata=table_metadata(con, model.name, result.rows, result.duration_s)
                    | {"compiled_sql": str(result.sql_path)},
                )
                selected = {
                    check_name: check
                    for check_name, check in checks[model.key].items()
                    if dg.AssetCheckKey(key, check_name) in selected_checks
                }
                outcomes = ledger.evaluate(model.name, selected, result)
                for check_name, outcome in outcomes.items():
                    if not outcome.passed and check_name in BLOCKING_CHECKS:
                        failed.add(model.key)
                    yield check_result(check_name, outcome, key)
            ledger.save()

    return _models


def build_assets(warehouse: Warehouse) -> list[dg.AssetsDefinition]:
    by_record_type: dict[str, list[Model]] = {}
    for model in warehouse.models():  # dependency order, kept within each record type
        by_record_type.setdefault(model.record_type or "other", []).append(model)
    return [
        clever_events,
        raw_tables,
        *(model_assets(name, models) for name, models in by_record_type.items()),
    ]
