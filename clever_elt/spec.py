"""The one place that reads the bundled Clever Events API v3.1 spec.

Record types, event types and each record's schema (with every `$ref` resolved) all come from the
spec's `<record_type>.<action>` event schemas; nothing here knows HTTP, Parquet or DuckDB.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

import yaml

SPEC_FILE = "clever-events-v3.1.openapi.yaml"
ACTIONS = ("created", "updated", "deleted")

# libyaml's parser when PyYAML was built with it: the spec loads in ~11 ms instead of ~60 ms, once
# per process (each Dagster step's, too).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def load_spec() -> dict[str, Any]:
    text = resources.files("clever_elt").joinpath(SPEC_FILE).read_text(encoding="utf-8")
    return yaml.load(text, Loader=_SAFE_LOADER)


def _schemas() -> dict[str, Any]:
    return load_spec()["components"]["schemas"]


def resolve(node: Any) -> Any:
    """A deep copy of `node` with every local `$ref` replaced by the schema it points to."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return resolve(_schemas()[name])
        return {key: resolve(value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item) for item in node]
    return copy.deepcopy(node)


@cache
def event_types() -> tuple[str, ...]:
    """Every `<record_type>.<action>` event type the spec defines, sorted."""
    return tuple(
        sorted(name for name in _schemas() if "." in name and name.rsplit(".", 1)[1] in ACTIONS)
    )


@cache
def record_types() -> tuple[str, ...]:
    """The record types in the order a roster is built: districts first, users after schools."""
    found = {name.rsplit(".", 1)[0] for name in event_types()}
    preferred = ("districts", "schools", "terms", "courses", "users", "sections", "resources")
    return tuple([r for r in preferred if r in found] + sorted(found - set(preferred)))


def _event_body_schema(event_type: str) -> dict[str, Any]:
    for part in _schemas()[event_type]["allOf"]:
        if "properties" in part and "data" in part["properties"]:
            return part
    raise KeyError(f"spec event schema {event_type!r} has no data property")


@cache
def _record_schema(record_type: str) -> dict[str, Any]:
    body = _event_body_schema(f"{record_type}.created")
    wrapper = resolve(body["properties"]["data"])
    return wrapper["properties"]["object"]


def record_schema(record_type: str) -> dict[str, Any]:
    """The resolved JSON schema of one record (e.g. `users` -> User with Roles expanded)."""
    if record_type not in record_types():
        raise KeyError(f"unknown record type {record_type!r}; known: {', '.join(record_types())}")
    return copy.deepcopy(_record_schema(record_type))


def record_properties(record_type: str) -> dict[str, dict[str, Any]]:
    """Top-level properties of a record, `id` included, in the spec's order."""
    return record_schema(record_type).get("properties", {})


def has_previous_attributes(event_type: str) -> bool:
    return "previous_attributes" in _event_body_schema(event_type).get("properties", {})
