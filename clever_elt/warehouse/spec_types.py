"""DuckDB types and typing SQL for each record type, derived from the spec (never written by hand).

Everything here is generated from `clever_elt.spec`: the typed columns of `clever.<rt>_history`, the
macros that parse a record's JSON into them, the fingerprint history uses to compare versions, and
the paths the checks walk. No DuckDB connection is touched here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from clever_elt import spec

_DATETIME_FORMATS = {"datetime", "date-time"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCALARS = {"boolean": "BOOLEAN", "integer": "BIGINT", "number": "DOUBLE"}


@dataclass(frozen=True)
class Column:
    """One typed column of a record type's tables (a top-level property of the record)."""

    name: str
    node: dict[str, Any]

    @property
    def sql_type(self) -> str:
        return sql_type(self.node)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def path_key(name: str) -> str:
    """A key as a JSON path step: bare when it is a plain identifier (as json_tree writes it)."""
    if _IDENTIFIER.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kind(node: dict[str, Any]) -> str:
    """'struct', 'list', 'json' (free-form object) or a DuckDB scalar type name."""
    if node.get("properties"):
        return "struct"
    node_type = node.get("type")
    if node_type == "array":
        return "list"
    if node_type == "string":
        if node.get("format") in _DATETIME_FORMATS:
            return "TIMESTAMPTZ"
        return "DATE" if node.get("format") == "date" else "VARCHAR"
    return _SCALARS.get(node_type, "json")


def _items(node: dict[str, Any]) -> dict[str, Any]:
    return node.get("items") or {}


def sql_type(node: dict[str, Any]) -> str:
    """The DuckDB type of a spec node: STRUCT for objects with properties, LIST for arrays."""
    node_kind = kind(node)
    if node_kind == "struct":
        fields = ", ".join(f"{quote(k)} {sql_type(v)}" for k, v in node["properties"].items())
        return f"STRUCT({fields})"
    if node_kind == "list":
        return f"{sql_type(_items(node))}[]"
    return "JSON" if node_kind == "json" else node_kind


def _structure(node: dict[str, Any]) -> Any:
    """The `from_json` structure of a node (same shape as `sql_type`)."""
    node_kind = kind(node)
    if node_kind == "struct":
        return {k: _structure(v) for k, v in node["properties"].items()}
    if node_kind == "list":
        return [_structure(_items(node))]
    return "JSON" if node_kind == "json" else node_kind


def columns(record_type: str) -> list[Column]:
    """The typed columns of a record type, in spec order; `id` is not among them (it is the key)."""
    return [
        Column(name, node)
        for name, node in spec.record_properties(record_type).items()
        if name != "id"
    ]


def _record_node(record_type: str) -> dict[str, Any]:
    return {"type": "object", "properties": {c.name: c.node for c in columns(record_type)}}


def _suspect(node: dict[str, Any], expr: str, depth: int) -> str | None:
    """SQL that is true when `from_json` may have typed this value wrongly, or None if it cannot.

    `from_json` turns an object into its JSON text where a string belongs, and a string into a
    struct of NULLs where an object belongs. Rows where this is possible (a superset of the bad
    ones) are typed again exactly, value by value.
    """
    node_kind = kind(node)
    if node_kind == "VARCHAR":
        return f"left({expr}, 1) in ('{{', '[')"
    if node_kind == "json":
        return f"left({expr}, 1) <> '{{'"
    if node_kind == "list":
        var = f"x{depth}"
        inner = _suspect(_items(node), var, depth + 1)
        if inner is None:
            return None
        return f"list_bool_or(list_transform({expr}, lambda {var}: {inner}))"
    if node_kind == "struct":
        fields = [f"{expr}.{quote(k)}" for k in node["properties"]]
        parts = [f"({expr} is not null and {' and '.join(f'{f} is null' for f in fields)})"]
        for name, child in node["properties"].items():
            inner = _suspect(child, f"{expr}.{quote(name)}", depth)
            if inner is not None:
                parts.append(inner)
        return "(" + " or ".join(parts) + ")"
    return None


def _child(expr: str, name: str) -> str:
    return f"json_extract({expr}, {literal('$.' + path_key(name))})"


def _exact(node: dict[str, Any], expr: str, depth: int) -> str:
    """SQL typing the JSON value `expr` exactly: a value that does not fit its type is NULL."""
    node_kind = kind(node)
    if node_kind == "struct":
        fields = ", ".join(
            f"{quote(k)} := {_exact(v, _child(expr, k), depth)}"
            for k, v in node["properties"].items()
        )
        return f"case when json_type({expr}) = 'OBJECT' then struct_pack({fields}) end"
    if node_kind == "list":
        var = f"x{depth}"
        inner = _exact(_items(node), var, depth + 1)
        return (
            f"case when json_type({expr}) = 'ARRAY' then "
            f"list_transform(json_extract({expr}, '$[*]'), lambda {var}: {inner}) end"
        )
    if node_kind == "json":
        return f"case when json_type({expr}) = 'OBJECT' then {expr} end"
    return (
        f"case when json_type({expr}) not in ('OBJECT', 'ARRAY') "
        f"then from_json({expr}, {literal(json.dumps(node_kind))}) end"
    )


def parse_macro(record_type: str) -> str:
    structure = json.dumps(_structure(_record_node(record_type)), separators=(",", ":"))
    return (
        f"create or replace macro clever_parse_{record_type}(state) as\n"
        f"    from_json(state, {literal(structure)})"
    )


def suspect_macro(record_type: str) -> str:
    condition = _suspect(_record_node(record_type), "parsed", 0) or "false"
    return (
        f"create or replace macro clever_suspect_{record_type}(parsed) as\n"
        f"    coalesce({condition}, false)"
    )


def exact_macro(record_type: str) -> str:
    node = _record_node(record_type)
    return (
        f"create or replace macro clever_exact_{record_type}(state) as\n"
        f"    ({_exact(node, 'state', 0)})::{sql_type(node)}"
    )


def _fingerprint_structure(node: dict[str, Any]) -> Any:
    # Objects become structs (key order does not matter); every other value stays JSON text, so
    # "" and null and 5 and "5" remain distinct.
    if kind(node) == "struct":
        return {k: _fingerprint_structure(v) for k, v in node["properties"].items()}
    return "JSON"


def fingerprint_macro(record_type: str) -> str:
    """`clever_fingerprint_<rt>(state)`: equal for states that agree on every spec field.

    Key order, null versus absent and last_modified (never in previous_attributes) are ignored.
    """
    node = _record_node(record_type)
    node["properties"].pop("last_modified", None)
    structure = json.dumps(_fingerprint_structure(node), separators=(",", ":"))
    return (
        f"create or replace macro clever_fingerprint_{record_type}(state) as\n"
        f"    hash(from_json(state, {literal(structure)}))"
    )


def _agrees(node: dict[str, Any], state: str, prior: str) -> str:
    node_kind = kind(node)
    if node_kind == "struct":
        parts = [
            _agrees(v, f"{state}.{quote(k)}", f"{prior}.{quote(k)}")
            for k, v in node["properties"].items()
        ]
        return "(" + " and ".join(parts) + ")"
    if node_kind == "json":
        return f"({prior} is null or coalesce(clever_json_agrees({state}, {prior}), false))"
    return f"({prior} is null or coalesce({state} = {prior}, false))"


def agrees_macro(record_type: str) -> str:
    """`clever_agrees_<rt>(state, prior)`: `state` holds every value `prior` has.

    Values only in `state` (keys an update added) and last_modified are no disagreement.
    """
    parts = [
        _agrees(c.node, f"state.{quote(c.name)}", f"prior.{quote(c.name)}")
        for c in columns(record_type)
        if c.name != "last_modified"
    ]
    return (
        f"create or replace macro clever_agrees_{record_type}(state, prior) as\n"
        f"    {' and '.join(parts) or 'true'}"
    )


def differing_macro(record_type: str) -> str:
    """`clever_differing_<rt>(a, b)`: the columns where two typed records differ, sorted."""
    items = []
    for c in sorted(columns(record_type), key=lambda c: c.name):
        if c.name == "last_modified":
            continue
        a, b = f"a.{quote(c.name)}", f"b.{quote(c.name)}"
        same = f"({_agrees(c.node, a, b)} and {_agrees(c.node, b, a)})"
        items.append(f"case when not {same} then {literal(c.name)} end")
    return (
        f"create or replace macro clever_differing_{record_type}(a, b) as\n"
        f"    list_filter([{', '.join(items)}]::varchar[], lambda f: f is not null)"
    )


def macros() -> list[str]:
    """Every spec-derived macro, as `create or replace macro` statements."""
    statements = []
    for record_type in spec.record_types():
        statements += [
            parse_macro(record_type),
            suspect_macro(record_type),
            exact_macro(record_type),
            fingerprint_macro(record_type),
            agrees_macro(record_type),
            differing_macro(record_type),
        ]
    return statements


def object_paths(record_type: str) -> dict[str, list[str]]:
    """JSON paths of the objects whose keys the spec lists, each with those keys.

    Arrays of objects appear as `path[*]`; free-form objects such as `ext` are not listed.
    """
    found: dict[str, list[str]] = {}

    def walk(node: dict[str, Any], path: str) -> None:
        node_kind = kind(node)
        if node_kind == "struct":
            found[path] = list(node["properties"])
            for name, child in node["properties"].items():
                walk(child, f"{path}.{path_key(name)}")
        elif node_kind == "list":
            walk(_items(node), f"{path}[*]")

    walk({"type": "object", "properties": spec.record_properties(record_type)}, "$")
    return found
