"""Model discovery: `dbt_like_sql/<schema>/<table>.sql` files -> `Model`s in dependency order.

A model file is one SELECT under a small comment header (kind, grain, description, for scd2 its
key and order, and optionally `incremental: append` for a table whose rows each come from one
event or baseline record). A file named `{record_type}_<suffix>.sql` is a template: one model per
record type of the spec, `{record_type}` replaced in its name and text. Dependencies come from
parsing the SQL with sqlglot; a reference to anything that is neither a model nor a raw source
fails here, naming the file.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import sqlglot
from sqlglot import exp

from clever_elt import spec

KINDS = ("view", "table", "scd2")
PLACEHOLDER = "{record_type}"
_HEADER_LINE = re.compile(r"^--\s*(?P<key>[a-z_]+)\s*:\s*(?P<value>.*?)\s*$")
_HEADER_KEYS = {"kind", "grain", "description", "unique_key", "order_by", "incremental"}
# How a table built id by id takes new events: its rows of the changed ids are computed again
# ("by id"), or only the rows of the new events and baseline records are computed and added
# ("append": each row comes from one event or baseline record, and never changes once built).
# Rows of earlier events stand even if no longer produced: if an event older than those already
# built were loaded later (extraction pulls in id order, so it does not), a row it made unneeded
# (a state no version holds any more) would stay; only such rows can differ from a full build.
INCREMENTAL = ("by id", "append")

Key = tuple[str, str]


class ModelError(ValueError):
    """A model file that cannot be used (bad header, unknown reference, cycle...)."""


@dataclass(frozen=True)
class Reference:
    """A schema-qualified relation named in a model's SQL: `sql[start:end]` is the name."""

    key: Key
    start: int
    end: int
    aliased: bool


@dataclass(frozen=True)
class Model:
    key: Key
    kind: str
    sql: str
    description: str
    grain: tuple[str, ...]
    deps: tuple[Key, ...]
    path: Path
    record_type: str | None = None
    unique_key: tuple[str, ...] = field(default=())
    order_by: str | None = None
    references: tuple[Reference, ...] = ()  # where `sql` names each relation it reads
    incremental: str = "by id"  # one of INCREMENTAL

    @property
    def name(self) -> str:
        return f"{self.key[0]}.{self.key[1]}"


def _split_header(path: Path, text: str) -> tuple[dict[str, str], str]:
    header: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    last = None
    while index < len(lines) and lines[index].startswith("--"):
        match = _HEADER_LINE.match(lines[index])
        if match and match["key"] in _HEADER_KEYS:
            last = match["key"]
            header[last] = match["value"]
        elif last == "description":
            # A description may wrap onto further comment lines.
            header[last] += " " + lines[index].lstrip("-").strip()
        else:
            raise ModelError(f"{path}: header line {index + 1} is not `-- key: value`")
        index += 1
    body = "\n".join(lines[index:]).strip().rstrip(";").strip()
    return header, body


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _references(path: Path, sql: str) -> tuple[Reference, ...]:
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ModelError(f"{path}: SQL does not parse: {exc}") from exc
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ModelError(f"{path}: a model is exactly one SELECT (no DDL, no other statements)")
    tree = statements[0]
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function such as json_tree(...) or range(...)
        if not table.db:
            if table.name in ctes:
                continue
            raise ModelError(f"{path}: relation {table.name!r} is not schema-qualified")
        start, end = table.args["db"].meta["start"], table.this.meta["end"] + 1
        found.append(Reference((table.db, table.name), start, end, bool(table.alias)))
    return tuple(found)


def _model(path: Path, key: Key, text: str, record_type: str | None) -> Model:
    header, body = _split_header(path, text)
    for required in ("kind", "grain", "description"):
        if not header.get(required):
            raise ModelError(f"{path}: header needs `-- {required}: ...`")
    kind = header["kind"]
    if kind not in KINDS:
        raise ModelError(f"{path}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "scd2" and not (header.get("unique_key") and header.get("order_by")):
        raise ModelError(f"{path}: an scd2 model needs `-- unique_key:` and `-- order_by:`")
    incremental = header.get("incremental", "by id")
    if incremental not in INCREMENTAL:
        raise ModelError(
            f"{path}: incremental {incremental!r} is not one of {', '.join(INCREMENTAL)}"
        )
    references = _references(path, body)
    return Model(
        key=key,
        kind=kind,
        sql=body,
        description=header["description"],
        grain=_names(header["grain"]),
        deps=tuple(sorted({reference.key for reference in references})),
        path=path,
        record_type=record_type,
        unique_key=_names(header.get("unique_key", "")),
        order_by=header.get("order_by"),
        references=references,
        incremental=incremental,
    )


def discover(sql_dir: Path, sources: tuple[Key, ...]) -> list[Model]:
    """Every model under `sql_dir`, in dependency order (ties by name); parsed again only when a
    model file changed (each Dagster asset asks anew)."""
    files = tuple((path, path.stat().st_mtime_ns) for path in sorted(sql_dir.glob("*/*.sql")))
    return list(_discover(sql_dir, sources, files))


@functools.lru_cache(maxsize=4)
def _discover(
    sql_dir: Path, sources: tuple[Key, ...], _files: tuple[tuple[Path, int], ...]
) -> tuple[Model, ...]:
    models: dict[Key, Model] = {}
    for path in sorted(sql_dir.glob("*/*.sql")):
        schema, stem = path.parent.name, path.stem
        text = path.read_text(encoding="utf-8")
        if PLACEHOLDER in stem:
            instances = [
                (rt, stem.replace(PLACEHOLDER, rt), text.replace(PLACEHOLDER, rt))
                for rt in spec.record_types()
            ]
        else:
            instances = [(None, stem, text)]
        for record_type, table, body in instances:
            model = _model(path, (schema, table), body, record_type)
            if model.key in models:
                raise ModelError(f"{path}: model {model.name} is defined twice")
            models[model.key] = model
    known = set(models) | set(sources)
    for model in models.values():
        for dep in model.deps:
            if dep not in known:
                raise ModelError(
                    f"{model.path}: unknown relation {dep[0]}.{dep[1]} "
                    f"(not a model in {sql_dir} and not a raw source)"
                )
    graph = TopologicalSorter(
        {key: [d for d in model.deps if d in models] for key, model in sorted(models.items())}
    )
    try:
        graph.prepare()
    except CycleError as exc:
        raise ModelError(f"models depend on each other in a cycle: {exc.args[1]}") from exc
    ordered: list[Model] = []
    while graph.is_active():
        ready = sorted(graph.get_ready())
        ordered += [models[key] for key in ready]
        graph.done(*ready)
    return tuple(ordered)


def quote_key(key: Key) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in key)
