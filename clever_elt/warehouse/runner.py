"""Materializes one model: writes its DDL, runs it in one transaction, keeps the SQL it ran.

Kinds: `view`, `table`, and `scd2`, whose SELECT yields one row per version with `valid_from` and
an ordering column; the kind adds `valid_to` (the next version's `valid_from`), `is_current` and
`_version`. A failing model rolls back and leaves the previous relation as it was.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clever_elt.warehouse import spec_types
from clever_elt.warehouse.models import Model, quote_key

log = logging.getLogger(__name__)


class ModelRunError(RuntimeError):
    """A model's SQL failed; the message names the model and the file holding the SQL it ran."""


@dataclass(frozen=True)
class ModelResult:
    rows: int
    duration_s: float
    sql_path: Path


def macro_statements(macros_file: Path) -> str:
    """The macros every model may use: hand-written ones, then the ones derived from the spec."""
    generated = ";\n\n".join(spec_types.macros())
    return f"{macros_file.read_text(encoding='utf-8').strip()}\n\n{generated};\n"


def create_macros(con: duckdb.DuckDBPyConnection, macros_file: Path, compiled_dir: Path) -> None:
    text = macro_statements(macros_file)
    _keep(compiled_dir / "macros.sql", text)
    con.execute(text)


def _keep(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _scd2_select(con: duckdb.DuckDBPyConnection, model: Model) -> str:
    columns = [row[0] for row in con.execute(f"describe {model.sql}").fetchall()]
    for required in (*model.unique_key, model.order_by, "valid_from"):
        if required not in columns:
            raise ModelRunError(f"{model.name}: scd2 model must select a {required!r} column")
    order = spec_types.quote(model.order_by)
    window = (
        f"partition by {', '.join(spec_types.quote(k) for k in model.unique_key)} order by {order}"
    )
    select: list[str] = []
    for name in columns:
        if name == model.order_by:
            continue
        select.append(spec_types.quote(name))
        if name == "valid_from":
            select += [
                "lead(valid_from) over versions as valid_to",
                "lead(valid_from) over versions is null as is_current",
            ]
    select.append("row_number() over versions as _version")
    body = ",\n    ".join(select)
    return (
        f"with model as (\n{model.sql}\n)\n\n"
        f"select\n    {body}\nfrom model\nwindow versions as ({window})"
    )


def compile_model(con: duckdb.DuckDBPyConnection, model: Model) -> str:
    """The statement that materializes a model (DDL around its SELECT)."""
    target = quote_key(model.key)
    if model.kind == "view":
        return f"create or replace view {target} as\n{model.sql}"
    if model.kind == "table":
        return f"create or replace table {target} as\n{model.sql}"
    return f"create or replace table {target} as\n{_scd2_select(con, model)}"


def materialize(con: duckdb.DuckDBPyConnection, model: Model, compiled_dir: Path) -> ModelResult:
    started = time.perf_counter()
    sql_path = compiled_dir / model.key[0] / f"{model.key[1]}.sql"
    con.execute("begin transaction")
    try:
        con.execute(f"create schema if not exists {spec_types.quote(model.key[0])}")
        statement = compile_model(con, model)
        _keep(sql_path, f"-- {model.description}\n{statement};\n")
        con.execute(statement)
        rows = con.execute(f"select count(*) from {quote_key(model.key)}").fetchall()[0][0]
        con.execute("commit")
    except duckdb.Error as exc:
        con.execute("rollback")
        raise ModelRunError(
            f"model {model.name} failed ({exc}); the SQL it ran: {sql_path}"
        ) from exc
    except BaseException:
        con.execute("rollback")
        raise
    result = ModelResult(rows=rows, duration_s=time.perf_counter() - started, sql_path=sql_path)
    log.info(
        "materialized %s (%s): %d rows in %.2fs", model.name, model.kind, rows, result.duration_s
    )
    return result
