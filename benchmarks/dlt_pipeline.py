"""The dlt equivalent of `clever-elt run`, written the way a dlt user would: the rest_api source
with an incremental cursor on the event id that follows Clever's relative `next` links, events
merged on the event id, a current-state table per record type merged on the object id (deletes as
hard deletes), and the first run's Data-API snapshot kept as an `scd2` table per record type.

Run as a child process by compare.py: `python -m benchmarks.dlt_pipeline WORK_DIR OUT.json`, with
the API given as for `clever-elt run` (CLEVER_API_BASE_URL, CLEVER_API_TOKEN). The DuckDB file is
WORK_DIR/dlt.duckdb, dataset `clever`; dlt's own state lives in WORK_DIR/pipelines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import requests
from dlt.sources.rest_api import rest_api_resources

from clever_elt.spec import record_types

PAGE_SIZE = 10_000
PIPELINE = "clever_dlt"
DATASET = "clever"
# Clever's links are relative (`/v3.1/events?limit=..&starting_after=..`); dlt resolves them
# against the request URL.
NEXT_LINK = {"type": "json_link", "next_url_path": "links[?rel=='next'].uri"}
# One row per object; the newest event wins inside a load, a deleted event removes the row.
CURRENT_STATE_HINTS: dict[str, Any] = {
    "write_disposition": "merge",
    "primary_key": "id",
    "columns": {
        "_deleted": {"data_type": "bool", "hard_delete": True},
        "_event_id": {"data_type": "text", "dedup_sort": "desc"},
    },
}


def unwrap(item: dict[str, Any]) -> dict[str, Any]:
    """A list item is `{"data": <event or record>, "uri": ...}`."""
    return item["data"]


@dlt.transformer(name="current_state", **CURRENT_STATE_HINTS)
def current_state(events: list[dict[str, Any]]) -> Iterator[Any]:
    """Each event's object, routed to the table named after its record type."""
    for event in events:
        record_type, action = event["type"].split(".", 1)
        row = {**event["data"]["object"], "_event_id": event["id"], "_deleted": action == "deleted"}
        yield dlt.mark.with_table_name(row, record_type)


def snapshot_rows(anchor: str):
    """Stamps a Data-API record with the newest event id at snapshot time, so that inside the
    first load a snapshot row wins over older events and loses to newer ones."""

    def stamp(item: dict[str, Any]) -> dict[str, Any]:
        return {**item["data"], "_event_id": anchor, "_deleted": False}

    return stamp


@dlt.source(name="clever", max_table_nesting=1000)
def clever_source(base_url: str, token: str, anchor: str | None) -> Iterator[Any]:
    """Events (always) and, when `anchor` is given (first run), a Data-API snapshot."""
    resources: list[dict[str, Any]] = [
        {
            "name": "events",
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {
                "path": "events",
                "params": {
                    "starting_after": {"type": "incremental", "cursor_path": "id"},
                },
            },
            "processing_steps": [{"map": unwrap}],
        }
    ]
    if anchor is not None:
        for record_type in record_types():
            resources.append(
                {
                    "name": f"{record_type}_snapshot",
                    "table_name": record_type,
                    **CURRENT_STATE_HINTS,
                    "endpoint": {"path": record_type},
                    "processing_steps": [{"map": snapshot_rows(anchor)}],
                }
            )
    config: dict[str, Any] = {
        "client": {
            "base_url": base_url,
            "auth": {"type": "bearer", "token": token},
            "paginator": NEXT_LINK,
        },
        "resource_defaults": {
            "endpoint": {"data_selector": "data", "params": {"limit": PAGE_SIZE}}
        },
        "resources": resources,
    }
    built = {resource.name: resource for resource in rest_api_resources(config)}
    events = built.pop("events")
    yield events
    yield events | current_state
    for record_type in record_types() if anchor is not None else ():
        snapshot = built[f"{record_type}_snapshot"]
        yield snapshot
        yield snapshot | history_table(record_type)


def history_table(record_type: str):
    """The snapshot again, as dlt's type-2 history (`_dlt_valid_from`/`_dlt_valid_to`)."""

    @dlt.transformer(
        name=f"{record_type}_history",
        table_name=f"{record_type}_history",
        write_disposition={"disposition": "merge", "strategy": "scd2"},
    )
    def history(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            yield {k: v for k, v in row.items() if k not in ("_event_id", "_deleted")}

    return history


def newest_event_id(base_url: str, token: str) -> str | None:
    response = requests.get(
        f"{base_url}/events",
        params={"ending_before": "last", "limit": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    response.raise_for_status()
    data = response.json()["data"]
    return data[0]["data"]["id"] if data else None


def run(work_dir: Path, base_url: str, token: str) -> dict[str, Any]:
    started = time.perf_counter()
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE,
        pipelines_dir=str(work_dir / "pipelines"),
        destination=dlt.destinations.duckdb(str(work_dir / "dlt.duckdb")),
        dataset_name=DATASET,
    )
    first_run = not pipeline.state.get("sources", {}).get("clever")
    # Clever's sync procedure: note the newest event id, then take the snapshot.
    anchor = newest_event_id(base_url, token) if first_run else None
    info = pipeline.run(clever_source(base_url, token, anchor), loader_file_format="parquet")
    info.raise_on_failed_jobs()
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return {
        "first_run": first_run,
        "events": counts.get("events", 0),
        "row_counts": dict(counts),
        "seconds": time.perf_counter() - started,
        "duckdb": str(work_dir / "dlt.duckdb"),
        "dataset": DATASET,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("out", type=Path, help="where to write the run's counts as JSON")
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    result = run(args.work_dir, os.environ["CLEVER_API_BASE_URL"], os.environ["CLEVER_API_TOKEN"])
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
