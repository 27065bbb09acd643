"""Data checks over the warehouse: plain functions of a DuckDB connection returning `CheckOutcome`.

Dagster wires them as asset checks (`checks_for(model)` says which apply to a model); they only
read, and only the relation of the model they belong to (`check_state` relies on it). Each counts
problems and keeps a few examples, so a failure says what to look at. The checks
in `NARROWABLE` also take `ids`, a table of ids: they then read only those ids' rows (see
`check_state`, which decides when that is enough).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import duckdb

from clever_elt.warehouse import spec_types
from clever_elt.warehouse.models import Key, Model, quote_key

EXAMPLES = 5
# Checks whose problems each lie within the rows of one id.
NARROWABLE = frozenset({"grain_unique", "intervals_do_not_overlap"})


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    severity: str  # 'ERROR' or 'WARN'
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    scope: str = "every row"  # what was read: see check_state


Check = Callable[[duckdb.DuckDBPyConnection], CheckOutcome]


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    relation = con.sql(sql, params=params) if params else con.sql(sql)
    names = relation.columns
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def _outcome(
    con: duckdb.DuckDBPyConnection,
    problems_sql: str,
    severity: str,
    description: str,
    count_sql: str | None = None,
) -> CheckOutcome:
    """Count the rows of `problems_sql` (or the single value of `count_sql`) and keep examples."""
    if count_sql is None:
        count = con.execute(f"select count(*) from ({problems_sql})").fetchall()[0][0]
    else:
        count = con.execute(count_sql).fetchall()[0][0] or 0
    examples = _dicts(con, f"select * from ({problems_sql}) limit {EXAMPLES}") if count else []
    return CheckOutcome(
        passed=count == 0,
        severity=severity,
        count=int(count),
        examples=[{k: _plain(v) for k, v in e.items()} for e in examples],
        description=description,
    )


def _plain(value: Any) -> Any:
    """Examples go into Dagster metadata: keep them JSON-friendly."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _of_ids(ids: str | None) -> str:
    """A filter to the ids listed in the table `ids` (none: every row)."""
    return "" if ids is None else f" and id in (select id from {spec_types.quote(ids)})"


def grain_unique(
    con: duckdb.DuckDBPyConnection,
    relation: Key,
    grain: tuple[str, ...],
    ids: str | None = None,
) -> CheckOutcome:
    columns = ", ".join(spec_types.quote(c) for c in grain)
    not_null = " and ".join(f"{spec_types.quote(c)} is not null" for c in grain)
    return _outcome(
        con,
        f"select {columns}, count(*) as copies from {quote_key(relation)} "
        f"where {not_null}{_of_ids(ids)} group by all having count(*) > 1",
        "ERROR",
        f"{relation[0]}.{relation[1]} has one row per ({', '.join(grain)})",
    )


def history_intervals(
    con: duckdb.DuckDBPyConnection, record_type: str, ids: str | None = None
) -> CheckOutcome:
    """Versions of an id follow each other without gap or overlap; only the last is open."""
    table = quote_key(("clever", f"{record_type}_history"))
    return _outcome(
        con,
        f"""
        with versions as (
            select
                id, _version, valid_from, valid_to, is_current,
                lag(valid_to) over (partition by id order by _version) as previous_valid_to,
                lead(_version) over (partition by id order by _version) as next_version
            from {table}
            where true{_of_ids(ids)}
        )
        select
            id, _version, valid_from, valid_to,
            case
                when valid_from > valid_to then 'ends before it starts'
                when _version > 1 and valid_from is null then 'unknown start after version 1'
                when _version > 1 and previous_valid_to is distinct from valid_from
                    then 'does not start where the previous version ends'
                when valid_to is null and next_version is not null then 'open but not last'
                when valid_to is not null and next_version is null then 'last but closed'
                when is_current <> (valid_to is null) then 'is_current <> (valid_to is null)'
            end as problem
        from versions
        where problem is not null
        """,
        "ERROR",
        f"clever.{record_type}_history: versions of an id do not overlap, at most one is open",
    )


def missed_events(con: duckdb.DuckDBPyConnection, record_type: str) -> CheckOutcome:
    """Updates whose previous_attributes disagree with the version before them."""
    return _outcome(
        con,
        f"select id, _version, valid_from, _event_id from "
        f"{quote_key(('clever', f'{record_type}_history'))} where _missed_before",
        "WARN",
        f"clever.{record_type}_history: every update's previous_attributes agree with the version "
        "before it (else events were missed there)",
    )


def flagged_events(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """Events kept in the lake that history cannot use (unknown type, no object or id...)."""
    return _outcome(
        con,
        "select problem, type, count(*) as events, min(event_id) as first_event_id, "
        "any_value(_file) as example_file from raw.events where problem is not null "
        "group by all order by events desc",
        "WARN",
        "raw.events: every event is interpretable (known type, an object with an id, a time)",
        count_sql="select count(*) from raw.events where problem is not null",
    )


def baseline_disagreements(con: duckdb.DuckDBPyConnection, record_type: str) -> CheckOutcome:
    table = f"audit.{record_type}_baseline_differences"
    return _outcome(
        con,
        f"select district, taken, reason, id, disagreement, fields, evidence_event_id "
        f"from {quote_key(('audit', f'{record_type}_baseline_differences'))} order by taken, id",
        "WARN",
        f"every baseline agrees with the events about {record_type} at its anchor ({table})",
    )


def cast_failures(con: duckdb.DuckDBPyConnection, record_type: str) -> CheckOutcome:
    """Values that do not fit their spec type (NULL in the typed column, kept in raw JSON), as
    `audit.<rt>_unfit_values` found them."""
    table = quote_key(("audit", f"{record_type}_unfit_values"))
    return _outcome(
        con,
        f"select id, _version, path, values, _event_id from {table} order by id, _version, path",
        "WARN",
        f"clever.{record_type}_history: every value fits its spec type (else it is NULL there and "
        "kept in raw.events.object)",
        count_sql=f"select sum(values) from {table}",
    )


def fields_outside_spec(con: duckdb.DuckDBPyConnection, record_type: str) -> CheckOutcome:
    """Keys the spec does not list (kept in raw.events.object, not in the typed columns), as
    `audit.<rt>_unknown_fields` found them."""
    table = quote_key(("audit", f"{record_type}_unknown_fields"))
    return _outcome(
        con,
        f"select path, sum(occurrences) as occurrences, min(source) as example_source "
        f"from {table} group by path order by occurrences desc, path",
        "WARN",
        f"{record_type}: every field is in the spec (unknown ones stay in raw.events.object)",
        count_sql=f"select coalesce(sum(occurrences), 0) from {table}",
    )


def checks_for(model: Model) -> dict[str, Check]:
    """The checks that apply to a model's relation, by check name."""
    found: dict[str, Check] = {
        "grain_unique": partial(grain_unique, relation=model.key, grain=model.grain)
    }
    if model.key[0] == "clever" and model.key[1].endswith("_history") and model.record_type:
        rt = model.record_type
        found["intervals_do_not_overlap"] = partial(history_intervals, record_type=rt)
        found["chain_agrees_with_previous_attributes"] = partial(missed_events, record_type=rt)
    # These two read audit tables built beside the history (from the same versions), so they
    # belong to those tables' assets: they run once the table is built.
    if model.key[0] == "audit" and model.key[1].endswith("_unfit_values"):
        found["values_fit_spec_types"] = partial(cast_failures, record_type=model.record_type)
    if model.key[0] == "audit" and model.key[1].endswith("_unknown_fields"):
        found["fields_in_spec"] = partial(fields_outside_spec, record_type=model.record_type)
    if model.key[0] == "audit" and model.key[1].endswith("_baseline_differences"):
        found["baselines_agree_with_events"] = partial(
            baseline_disagreements, record_type=model.record_type
        )
    return found


def raw_checks() -> dict[str, Check]:
    """Checks on `raw.events` (a source, not a model)."""
    return {
        "event_id_unique": partial(grain_unique, relation=("raw", "events"), grain=("event_id",)),
        "events_interpretable": flagged_events,
    }
