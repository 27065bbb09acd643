"""What a data engineer sees on the Dagster dashboard: layer results turned into metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb

from clever_elt.extract import ExtractResult
from clever_elt.warehouse.checks import CheckOutcome

PREVIEW_ROWS = 5


def _markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def extract_metadata(result: ExtractResult) -> dict[str, Any]:
    counts = sorted(result.counts.items(), key=lambda item: (str(item[0][0]), str(item[0][1])))
    rows = [[rt or "?", action or "?", n] for (rt, action), n in counts]
    seconds = max(result.duration_s, 1e-9)
    metadata: dict[str, Any] = {
        "district": result.district,
        "events_written": dg.MetadataValue.int(result.events_written),
        "events_per_second": dg.MetadataValue.int(int(result.events_written / seconds)),
        "events_by_type": dg.MetadataValue.md(
            _markdown_table(["record type", "action", "events"], rows)
        ),
        "events_flagged": dg.MetadataValue.int(result.problems),
        "cursor_before": result.cursor_before or "(none: first run)",
        "cursor_after": result.cursor_after or "(none)",
        "gap_resync": dg.MetadataValue.bool(result.gap),
        "baseline_taken": result.baseline.taken if result.baseline else "(none)",
        "pages": dg.MetadataValue.int(result.pages),
        "files_written": dg.MetadataValue.int(result.files_written),
        "bytes_written": dg.MetadataValue.int(result.bytes_written),
        "duration_s": dg.MetadataValue.float(round(result.duration_s, 3)),
    }
    return metadata


def table_metadata(
    con: duckdb.DuckDBPyConnection, relation: str, rows: int, duration_s: float
) -> dict[str, Any]:
    preview = con.sql(f"select * from {relation} limit {PREVIEW_ROWS}")
    header = list(preview.columns)
    sample = [[_short(v) for v in row] for row in preview.fetchall()]
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "duration_s": dg.MetadataValue.float(round(duration_s, 3)),
        "preview": dg.MetadataValue.md(_markdown_table(header, sample)),
    }


def _short(value: Any, width: int = 40) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def check_result(name: str, outcome: CheckOutcome, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {"count": dg.MetadataValue.int(outcome.count), "read": outcome.scope}
    if outcome.description:
        metadata["description"] = outcome.description
    if outcome.examples:
        metadata["examples"] = dg.MetadataValue.json(outcome.examples)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        metadata=metadata,
    )


def cursor_age_outcome(cursor: str | None, api_now: datetime | None) -> CheckOutcome:
    """Age of the newest event in the lake: past 20 days WARN, past Clever's 30 days ERROR."""
    if cursor is None:
        return CheckOutcome(True, "WARN", 0, [], "the lake holds no events yet")
    now = api_now or datetime.now(UTC)
    age_days = (now.timestamp() - int(cursor[:8], 16)) / 86400
    description = f"newest event in the lake is {age_days:.1f} days old (cursor {cursor})"
    if age_days > 30:
        return CheckOutcome(False, "ERROR", round(age_days), [], description + ": past retention")
    if age_days > 20:
        return CheckOutcome(False, "WARN", round(age_days), [], description + ": expires soon")
    return CheckOutcome(True, "WARN", round(age_days), [], description)
