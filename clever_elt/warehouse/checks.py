"""Data checks over the warehouse: plain functions of a DuckDB connection returning `CheckOutcome`.

Dagster wires them as asset checks (`checks_for(model)` says which apply to a model); they only
read. Each counts problems and keeps a few examples, so a failure says what to look at.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import duckdb

from clever_elt import spec
from clever_elt.warehouse import spec_types
from clever_elt.warehouse.models import Key, Model, quote_key

EXAMPLES = 5


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    severity: str  # 'ERROR' or 'WARN'
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""


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


def grain_unique(
    con: duckdb.DuckDBPyConnection, relation: Key, grain: tuple[str, ...]
) -> CheckOutcome:
    columns = ", ".join(spec_types.quote(c) for c in grain)
    not_null = " and ".join(f"{spec_types.quote(c)} is not null" for c in grain)
    return _outcome(
        con,
        f"select {columns}, count(*) as copies from {quote_key(relation)} "
        f"where {not_null} group by all having count(*) > 1",
        "ERROR",
        f"{relation[0]}.{relation[1]} has one row per ({', '.join(grain)})",
    )


def history_intervals(con: duckdb.DuckDBPyConnection, record_type: str) -> CheckOutcome:
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


def _states_sql(record_type: str) -> str:
    """Every version state of a record type, as JSON, with the typed record history made of it."""
    rt = spec_types.quote(record_type)[1:-1]
    return f"""
        with versions as (
            select * from staging.{rt}_versions
        ),
        states as (
            select
                versions.id,
                versions._seq,
                case versions.state_kind
                    when 'object' then events.object
                    when 'prior' then clever_prior_state(events.object, events.previous_attributes)
                    when 'snapshot' then snapshots.object
                end as state
            from versions
            left join raw.events as events on events.event_id = versions.state_event_id
            left join raw.snapshots as snapshots
                on
                    snapshots.district = versions.district
                    and snapshots.taken = versions.state_taken
                    and snapshots.record_type = '{rt}'
                    and snapshots.object_id = versions.id
        ),
        parsed as (
            select *, clever_parse_{record_type}(state) as parsed from states
        ),
        typed as (
            select
                *,
                clever_suspect_{record_type}(parsed) as suspect,
                case
                    when clever_suspect_{record_type}(parsed) then clever_exact_{record_type}(state)
                    else parsed
                end as record
            from parsed
        )
    """


def _cast_failure_terms(record_type: str) -> list[tuple[str, str]]:
    """(path, SQL counting failures) for the scalar casts the fast parse can reject silently.

    `raw_text` is the state parsed with those scalars as text; `record` the typed record.
    """
    terms: list[tuple[str, str]] = []

    def walk(node: dict[str, Any], path: str, raw: str, typed: str) -> None:
        node_kind = spec_types.kind(node)
        if node_kind == "struct":
            for name, child in node["properties"].items():
                key = spec_types.quote(name)
                walk(child, f"{path}.{name}", f"{raw}.{key}", f"{typed}.{key}")
        elif node_kind == "list":
            items = node.get("items") or {}
            inner: list[tuple[str, str]] = []
            if spec_types.kind(items) == "struct":
                for name, child in items["properties"].items():
                    if spec_types.kind(child) not in ("struct", "list", "json", "VARCHAR"):
                        key = spec_types.quote(name)
                        inner.append(
                            (
                                f"{path}[*].{name}",
                                f"z[1].{key} is not null and z[2].{key} is null",
                            )
                        )
            for inner_path, condition in inner:
                terms.append(
                    (
                        inner_path,
                        f"coalesce(list_count(list_filter(list_zip({raw}, {typed}), "
                        f"lambda z: {condition})), 0)",
                    )
                )
        elif node_kind not in ("json", "VARCHAR"):
            terms.append((path, f"({raw} is not null and {typed} is null)::int"))

    for column in spec_types.columns(record_type):
        key = spec_types.quote(column.name)
        walk(column.node, column.name, f"raw_text.{key}", f"record.{key}")
    return terms


def _text_structure(node: dict[str, Any]) -> Any:
    node_kind = spec_types.kind(node)
    if node_kind == "struct":
        return {k: _text_structure(v) for k, v in node["properties"].items()}
    if node_kind == "list":
        return [_text_structure(node.get("items") or {})]
    return "JSON" if node_kind == "json" else "VARCHAR"


def cast_failures(con: duckdb.DuckDBPyConnection, record_type: str) -> CheckOutcome:
    """Values that do not fit their spec type (NULL in the typed column, kept in raw JSON).

    Scalars the fast parse rejects (bad timestamps, dates, booleans) are counted on every
    version; values of the wrong JSON kind (an object where a string belongs...) can only be in
    versions the fast parse flagged, and those are compared path by path.
    """
    terms = _cast_failure_terms(record_type)
    text = json.dumps(
        _text_structure(
            {
                "type": "object",
                "properties": {c.name: c.node for c in spec_types.columns(record_type)},
            }
        ),
        separators=(",", ":"),
    )
    # Scalars that are cast (timestamps...) are counted above; these are the kind checks.
    paths = [
        p
        for p, node in _kind_paths(record_type)
        if spec_types.kind(node) in ("struct", "list", "json", "VARCHAR")
    ]
    raw_kinds = f"json_type(state, {_sql_list(paths)})"
    typed_kinds = f"json_type(to_json(record), {_sql_list(paths)})"
    sql = f"""
        {_states_sql(record_type)},
        checked as (
            select
                id, _seq, state, record, suspect,
                from_json(state, '{text}') as raw_text
            from typed
        ),
        scalar_failures as (
            select id, _seq, unnest(map_entries(map {{
                {", ".join(f"'{p}': {s}" for p, s in terms) or "'': 0"}
            }})) as failure
            from checked
        ),
        kind_failures as (
            select
                id,
                _seq,
                unnest(
                    list_filter(
                        list_zip({_sql_list(paths)}, {raw_kinds}, {typed_kinds}),
                        lambda z: z[2] is not null and z[2] <> 'NULL'
                            and (z[3] is null or z[3] = 'NULL')
                    )
                )[1] as path
            from checked
            where suspect
        ),
        failures as (
            select id, _seq, failure.key as path, failure.value as values
            from scalar_failures
            where failure.value > 0
            union all
            select id, _seq, path, 1 as values
            from kind_failures
        )
        select failures.id, failures.path, failures.values, typed.state
        from failures
        inner join typed using (id, _seq)
    """
    return _outcome(
        con,
        sql,
        "WARN",
        f"clever.{record_type}_history: every value fits its spec type (else it is NULL there and "
        "kept in raw.events.object)",
        count_sql=f"select sum(values) from ({sql})",
    )


def _kind_paths(record_type: str) -> list[tuple[str, dict[str, Any]]]:
    """JSON paths (no wildcards) of every spec value outside arrays, arrays included."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(node: dict[str, Any], path: str) -> None:
        found.append((path, node))
        if spec_types.kind(node) == "struct":
            for name, child in node["properties"].items():
                walk(child, f"{path}.{spec_types.path_key(name)}")

    for column in spec_types.columns(record_type):
        walk(column.node, f"$.{spec_types.path_key(column.name)}")
    return found


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def fields_outside_spec(con: duckdb.DuckDBPyConnection, record_type: str) -> CheckOutcome:
    """Keys the spec does not list (kept in raw.events.object, not in the typed columns).

    Free-form objects such as `ext` may hold anything and are not looked into.
    """
    objects = spec_types.object_paths(record_type)
    known = [f"{path}.{spec_types.path_key(key)}" for path, keys in objects.items() for key in keys]
    free = [
        f"{path}.{spec_types.path_key(key)}"
        for path, keys in objects.items()
        for key in keys
        if spec_types.kind(_node_at(record_type, path, key)) == "json"
    ]
    rt = record_type.replace("'", "''")
    sql = f"""
        with objects as (
            select event_id as source, object from raw.events
            where record_type = '{rt}' and problem is null
            union all
            select 'baseline ' || taken as source, object from raw.snapshots
            where record_type = '{rt}' and problem is null
        ),
        keys as (
            select
                regexp_replace(node.fullkey, '\\[[0-9]+\\]', '[*]', 'g') as path,
                objects.source
            from objects, json_tree(objects.object) as node
            where node.key is not null and node.fullkey <> '$'
                and regexp_replace(node.path, '\\[[0-9]+\\]', '[*]', 'g') in (
                    select unnest({_sql_list(list(objects))})
                )
        )
        select path, count(*) as occurrences, min(source) as example_source
        from keys
        where path not in (select unnest({_sql_list(known)}))
            and not list_bool_or(list_transform({_sql_list(free) if free else "[]::varchar[]"},
                lambda f: starts_with(path, f || '.') or starts_with(path, f || '[')))
        group by path
        order by occurrences desc
    """
    return _outcome(
        con,
        sql,
        "WARN",
        f"{record_type}: every field is in the spec (unknown ones stay in raw.events.object)",
        count_sql=f"select coalesce(sum(occurrences), 0) from ({sql})",
    )


def _node_at(record_type: str, path: str, key: str) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object", "properties": spec.record_properties(record_type)}
    for part in _split_path(path):
        node = node["items"] if part == "[*]" else node["properties"][part]
    return node["properties"][key]


def _split_path(path: str) -> list[str]:
    parts: list[str] = []
    for piece in path[2:].split(".") if path != "$" else []:
        name = piece.removesuffix("[*]")
        parts.append(json.loads(name) if name.startswith('"') else name)
        if piece.endswith("[*]"):
            parts.append("[*]")
    return parts


def checks_for(model: Model) -> dict[str, Check]:
    """The checks that apply to a model's relation, by check name."""
    found: dict[str, Check] = {
        "grain_unique": partial(grain_unique, relation=model.key, grain=model.grain)
    }
    if model.key[0] == "clever" and model.key[1].endswith("_history") and model.record_type:
        rt = model.record_type
        found["intervals_do_not_overlap"] = partial(history_intervals, record_type=rt)
        found["chain_agrees_with_previous_attributes"] = partial(missed_events, record_type=rt)
        found["values_fit_spec_types"] = partial(cast_failures, record_type=rt)
        found["fields_in_spec"] = partial(fields_outside_spec, record_type=rt)
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
