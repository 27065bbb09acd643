"""Whether a contender's current-state tables agree with the simulator's truth: the same ids per
record type, and the same values in the key fields the spec gives every record type (plain string
properties, the string fields of object properties, arrays of strings). Read-only on the
contender's DuckDB file; the comparison itself runs in a throwaway in-memory DuckDB.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from clever_elt.spec import record_properties

EXAMPLES = 3


@dataclass(frozen=True)
class KeyField:
    path: tuple[str, ...]
    is_list: bool

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def json_path(self) -> str:
        return "$." + ".".join(f'"{part}"' for part in self.path)


def _plain_string(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "string" and "format" not in schema


def key_fields(record_type: str) -> list[KeyField]:
    fields = []
    for name, schema in record_properties(record_type).items():
        if name == "id":
            continue
        if _plain_string(schema):
            fields.append(KeyField((name,), False))
        elif schema.get("type") == "array" and _plain_string(schema.get("items", {})):
            fields.append(KeyField((name,), True))
        elif schema.get("type") == "object":
            for sub, sub_schema in schema.get("properties", {}).items():
                if _plain_string(sub_schema):
                    fields.append(KeyField((name, sub), False))
    return fields


@dataclass
class TableCheck:
    """One record type: how the contender's ids and key fields compare with the truth."""

    record_type: str
    truth_rows: int
    rows: int
    missing_ids: int = 0
    unexpected_ids: int = 0
    duplicate_ids: int = 0
    differing_rows: int = 0
    fields: list[str] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def agrees(self) -> bool:
        return self.error is None and not (
            self.missing_ids or self.unexpected_ids or self.duplicate_ids or self.differing_rows
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agrees": self.agrees}


# A contender is described by a function that, given a record type, its key fields and the
# attached database's alias, returns SQL selecting `id` and one column per key field (named by
# `KeyField.name`, lists as VARCHAR[]), or None when the contender has no such table.
ContenderSql = Callable[[duckdb.DuckDBPyConnection, str, list[KeyField], str], str | None]


def clever_elt_sql(
    con: duckdb.DuckDBPyConnection, record_type: str, fields: list[KeyField], db: str
) -> str | None:
    """`clever.<rt>_current`; each row turned into JSON so that nested fields read like truth's."""
    if not _table_exists(con, db, "clever", f"{record_type}_current"):
        return None
    return _json_projection(
        f"(SELECT to_json(t) AS j FROM {db}.clever.{record_type}_current t)", fields
    )


def dlt_sql(
    con: duckdb.DuckDBPyConnection, record_type: str, fields: list[KeyField], db: str
) -> str | None:
    """dlt's `<rt>` table: objects flattened into `a__b` columns, lists in `<rt>__<a>` tables."""
    if not _table_exists(con, db, "clever", record_type):
        return None
    columns = _columns(con, db, "clever", record_type)
    selects, joins = ["t.id"], []
    for i, key in enumerate(fields):
        column = "__".join(key.path)
        if key.is_list:
            child = f"{record_type}__{column}"
            if _table_exists(con, db, "clever", child):
                joins.append(
                    f"LEFT JOIN (SELECT _dlt_parent_id, list(value ORDER BY _dlt_list_idx) AS v "
                    f"FROM {db}.clever.{child} GROUP BY ALL) l{i} "
                    f"ON l{i}._dlt_parent_id = t._dlt_id"
                )
                selects.append(f'l{i}.v::VARCHAR[] AS "{key.name}"')
            else:
                selects.append(f'NULL::VARCHAR[] AS "{key.name}"')
        elif column in columns:
            selects.append(f'"{column}"::VARCHAR AS "{key.name}"')
        else:
            # dlt creates no column for a field that was never non-null.
            selects.append(f'NULL::VARCHAR AS "{key.name}"')
    return f"SELECT {', '.join(selects)} FROM {db}.clever.{record_type} t {' '.join(joins)}"


def _json_projection(source: str, fields: list[KeyField], column: str = "j") -> str:
    selects = [f"{column} ->> '$.id' AS id"]
    for key in fields:
        if key.is_list:
            selects.append(f"json_extract_string({column}, '{key.json_path}[*]') AS \"{key.name}\"")
        else:
            selects.append(f"{column} ->> '{key.json_path}' AS \"{key.name}\"")
    return f"SELECT {', '.join(selects)} FROM {source}"


def _table_exists(con: duckdb.DuckDBPyConnection, db: str, schema: str, table: str) -> bool:
    return bool(_columns(con, db, schema, table))


def _columns(con: duckdb.DuckDBPyConnection, db: str, schema: str, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_catalog = $db AND table_schema = $schema AND table_name = $table",
        {"db": db, "schema": schema, "table": table},
    ).fetchall()
    return {row[0] for row in rows}


def check_table(
    con: duckdb.DuckDBPyConnection,
    record_type: str,
    truth_file: Path,
    contender_sql: ContenderSql,
    db: str,
) -> TableCheck:
    """Compares one record type; `truth_file` holds the JSON array of its live records."""
    fields = key_fields(record_type)
    truth = _json_projection(
        f"read_json_objects('{truth_file}', format = 'array')", fields, column="json"
    )
    truth_rows = con.execute(f"SELECT count(*) FROM ({truth})").fetchone()[0]
    actual = contender_sql(con, record_type, fields, db)
    if actual is None:
        return TableCheck(record_type, truth_rows, 0, error="no such table")
    rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT id) FROM ({actual})").fetchone()
    # Empty and absent arrays are the same here: dlt cannot tell them apart.
    differs = (
        " OR ".join(
            f'coalesce(e."{k.name}", []) IS DISTINCT FROM coalesce(a."{k.name}", [])'
            if k.is_list
            else f'e."{k.name}" IS DISTINCT FROM a."{k.name}"'
            for k in fields
        )
        or "false"
    )
    joined = f"""
        WITH e AS ({truth}), a AS (SELECT DISTINCT ON (id) * FROM ({actual}))
        SELECT e.id AS truth_id, a.id AS contender_id, {differs} AS differs,
            to_json(e) AS truth, to_json(a) AS contender
        FROM e FULL OUTER JOIN a ON e.id = a.id
    """
    counts = con.execute(
        f"""SELECT count(*) FILTER (contender_id IS NULL), count(*) FILTER (truth_id IS NULL),
            count(*) FILTER (truth_id IS NOT NULL AND contender_id IS NOT NULL AND differs)
        FROM ({joined})"""
    ).fetchone()
    examples = con.execute(
        f"""SELECT truth, contender FROM ({joined})
        WHERE truth_id IS NULL OR contender_id IS NULL OR differs
        ORDER BY coalesce(truth_id, contender_id) LIMIT {EXAMPLES}"""
    ).fetchall()
    return TableCheck(
        record_type,
        truth_rows,
        rows,
        missing_ids=counts[0],
        unexpected_ids=counts[1],
        duplicate_ids=rows - distinct,
        differing_rows=counts[2],
        fields=[k.name for k in fields],
        examples=[_difference(truth, contender) for truth, contender in examples],
    )


def _difference(truth: str | None, contender: str | None) -> dict[str, Any]:
    """One disagreeing row, reduced to its id and the fields that differ (lists shortened)."""
    e, a = json.loads(truth or "{}"), json.loads(contender or "{}")
    fields = sorted(k for k in e.keys() | a.keys() if k != "id" and e.get(k) != a.get(k))
    return {
        "id": e.get("id") or a.get("id"),
        "in_truth": e.get("id") is not None,
        "in_contender": a.get("id") is not None,
        "fields": {k: {"truth": _short(e.get(k)), "contender": _short(a.get(k))} for k in fields},
    }


def _short(value: Any) -> Any:
    if isinstance(value, list) and len(value) > EXAMPLES:
        return [*value[:EXAMPLES], f"... {len(value)} items"]
    return value


def check_database(
    db_path: Path, truth_files: dict[str, Path], contender_sql: ContenderSql
) -> list[TableCheck]:
    """Every record type of `truth_files` (record type -> JSON array file) against `db_path`."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{db_path}' AS contender (READ_ONLY)")
        return [
            check_table(con, record_type, path, contender_sql, "contender")
            for record_type, path in truth_files.items()
        ]
    finally:
        con.close()
