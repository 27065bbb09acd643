"""Macros, derived from the spec, that find what the typed tables cannot hold: values that do not
fit their spec type and keys the spec does not list.

The audit models `<rt>_unfit_values` and `<rt>_unknown_fields` call them once per version or
object (so they are built id by id like every model); the checks only read those tables.
"""

from __future__ import annotations

import json
from typing import Any

from clever_elt import spec
from clever_elt.warehouse import spec_types

# spec_types.path_key in SQL: a key as json_tree writes it in a path.
_PATH_KEY_SQL = (
    "case when regexp_full_match(k, '[A-Za-z_][A-Za-z0-9_]*') then k "
    """else '"' || replace(replace(k, '\\', '\\\\'), '"', '\\"') || '"' end"""
)


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(_literal(v) for v in values) + "]"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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
            if spec_types.kind(items) != "struct":
                return
            for name, child in items["properties"].items():
                if spec_types.kind(child) in ("struct", "list", "json", "VARCHAR"):
                    continue
                key = spec_types.quote(name)
                condition = f"z[1].{key} is not null and z[2].{key} is null"
                terms.append(
                    (
                        f"{path}[*].{name}",
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
    """The part of a node's structure `_cast_failure_terms` compares, every scalar in it as text;
    None where it compares nothing (typing the rest again would only cost time)."""
    node_kind = spec_types.kind(node)
    if node_kind == "struct":
        children = {k: _text_structure(v) for k, v in node["properties"].items()}
        return {k: v for k, v in children.items() if v is not None} or None
    if node_kind == "list":
        items = node.get("items") or {}
        if spec_types.kind(items) != "struct":
            return None
        cast = [
            name
            for name, child in items["properties"].items()
            if spec_types.kind(child) not in ("struct", "list", "json", "VARCHAR")
        ]
        return [dict.fromkeys(cast, "VARCHAR")] if cast else None
    return None if node_kind in ("json", "VARCHAR") else "VARCHAR"


def _kind_paths(record_type: str) -> list[str]:
    """JSON paths (no wildcards) of every spec value outside arrays that is not a cast scalar."""
    found: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if spec_types.kind(node) in ("struct", "list", "json", "VARCHAR"):
            found.append(path)
        if spec_types.kind(node) == "struct":
            for name, child in node["properties"].items():
                walk(child, f"{path}.{spec_types.path_key(name)}")

    for column in spec_types.columns(record_type):
        walk(column.node, f"$.{spec_types.path_key(column.name)}")
    return found


def text_macro(record_type: str) -> str:
    """`clever_text_<rt>(state)`: the state's cast scalars parsed as text (nothing rejected);
    NULL for a record type without any."""
    node = {
        "type": "object",
        "properties": {c.name: c.node for c in spec_types.columns(record_type)},
    }
    structure = _text_structure(node)
    if structure is None:
        return f"create or replace macro clever_text_{record_type}(state) as null"
    text = json.dumps(structure, separators=(",", ":"))
    return (
        f"create or replace macro clever_text_{record_type}(state) as\n"
        f"    from_json(state, {_literal(text)})"
    )


def unfit_macro(record_type: str) -> str:
    """`clever_unfit_<rt>(state, raw_text, record, suspect)`: [{path, values}] of the values that
    are NULL in `record` but not in `state`.

    Scalars that are cast (bad timestamps, dates, booleans) are counted on every version; values
    of the wrong JSON kind (an object where a string belongs...) can only be in versions the fast
    parse flagged (`suspect`), and those are compared path by path.
    """
    scalars = ", ".join(
        f"{{'path': {_literal(path)}, 'values': {term}}}"
        for path, term in _cast_failure_terms(record_type)
    )
    paths = _sql_list(_kind_paths(record_type))
    kinds = (
        f"list_transform(list_filter(list_zip({paths}, json_type(state, {paths}), "
        f"json_type(to_json(record), {paths})), "
        "lambda z: z[2] is not null and z[2] <> 'NULL' and (z[3] is null or z[3] = 'NULL')), "
        "lambda z: {'path': z[1], 'values': 1})"
    )
    return (
        f"create or replace macro clever_unfit_{record_type}(state, raw_text, record, suspect) as\n"
        f"    list_concat(\n"
        f"        list_filter([{scalars}]::struct(path varchar, values int)[], "
        f"lambda f: f.values > 0),\n"
        f"        case when suspect then {kinds} else [] end\n"
        f"    )"
    )


def _key_paths(record_type: str) -> list[str]:
    """Paths of the objects outside arrays whose keys the spec lists."""
    return [p for p in spec_types.object_paths(record_type) if "[*]" not in p]


def _array_paths(record_type: str) -> list[str]:
    """The arrays whose items are objects the spec lists the keys of."""
    paths = spec_types.object_paths(record_type)
    return list(dict.fromkeys(p.partition("[*]")[0] for p in paths if "[*]" in p))


def parts_macro(record_type: str) -> str:
    """`clever_parts_<rt>(object)`: the keys of every listed object outside arrays (one multi-path
    `json_keys`: one parse, nothing serialized) and the arrays of listed objects as JSON."""
    arrays = _array_paths(record_type)
    array_sql = f"json_extract(object, {_sql_list(arrays)})" if arrays else "null::json[]"
    return (
        f"create or replace macro clever_parts_{record_type}(object) as\n"
        f"    struct_pack(\n"
        f"        keys := json_keys(object, {_sql_list(_key_paths(record_type))}),\n"
        f"        arrays := {array_sql}\n"
        f"    )"
    )


def unknown_fields_macro(record_type: str) -> str:
    """`clever_unknown_fields_<rt>(parts)`: the paths of keys the spec does not list, one per
    occurrence, in the objects whose keys it lists (free-form ones such as `ext` hold anything)."""
    key_paths, arrays = _key_paths(record_type), _array_paths(record_type)
    unknown = []
    for path, keys in spec_types.object_paths(record_type).items():
        head, star, rest = path.partition("[*]")
        if star:
            items = _literal(f"$[*]{rest}")
            found = (
                f"flatten(list_transform(json_extract(parts.arrays[{arrays.index(head) + 1}], "
                f"{items}), lambda v: json_keys(v)))"
            )
        else:
            found = f"parts.keys[{key_paths.index(path) + 1}]"
        # IN over constants: several times cheaper per key than list_contains on a list literal.
        known = f"k not in ({', '.join(_literal(k) for k in keys)})" if keys else "true"
        unknown.append(
            f"list_transform(list_filter(coalesce({found}, []), lambda k: {known}), "
            f"lambda k: {_literal(path)} || '.' || {_PATH_KEY_SQL})"
        )
    return (
        f"create or replace macro clever_unknown_fields_{record_type}(parts) as\n"
        f"    list_concat({', '.join(unknown)})"
    )


def macros() -> list[str]:
    """Every macro of this module, as `create or replace macro` statements."""
    statements = []
    for record_type in spec.record_types():
        statements += [
            text_macro(record_type),
            unfit_macro(record_type),
            parts_macro(record_type),
            unknown_fields_macro(record_type),
        ]
    return statements
