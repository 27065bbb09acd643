"""The DuckDB warehouse: load the lake into `raw.*`, then build the SQL models in `dbt_like_sql/`.

`Warehouse` is the one entry point (Dagster assets and the CLI call it); it never talks to the API.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb

from clever_elt.lake.layout import Lake
from clever_elt.warehouse import load as _load
from clever_elt.warehouse.load import LoadResult
from clever_elt.warehouse.models import Model, ModelError, discover
from clever_elt.warehouse.runner import (
    Increment,
    ModelResult,
    ModelRunError,
    create_macros,
    macro_statements,
    materialize,
)

DEFAULT_SQL_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql"

__all__ = [
    "LoadResult",
    "Model",
    "ModelError",
    "ModelResult",
    "ModelRunError",
    "Warehouse",
    "WarehouseInUseError",
    "connect",
]


# A whole `clever-elt run` must stay under 1 GiB resident: DuckDB gets this much and spills the
# rest of a large join, sort or window to a directory beside the database file.
MEMORY_LIMIT = "450MB"
SPILL_DIR = "duckdb-spill"


# DuckDB's words when another process holds the file: "... Conflicting lock is held in <program>
# (PID <pid>). ..."
_CONFLICTING_LOCK = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class WarehouseInUseError(RuntimeError):
    """Another process has the warehouse file open in a way that excludes this connection."""


def connect(db_path: str | os.PathLike[str], read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse file, in UTC (TIMESTAMPTZ would otherwise render locally),
    with bounded memory."""
    try:
        con = duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.IOException as exc:
        holder = _CONFLICTING_LOCK.search(str(exc))
        if holder is None:
            raise
        raise WarehouseInUseError(
            f"another process (PID {holder['pid']}, {holder['program']}) has the warehouse "
            f"{db_path} open: DuckDB lets one process write a database file or several read it, "
            "not both. Close that connection (a notebook, a DuckDB shell) and run again; events "
            "already extracted wait in the lake until then."
        ) from exc
    spill = Path(db_path).resolve().parent / SPILL_DIR
    con.execute(
        f"""
        SET TimeZone = 'UTC';
        SET memory_limit = '{MEMORY_LIMIT}';
        SET temp_directory = '{str(spill).replace("'", "''")}';
        SET preserve_insertion_order = false;
        """
    )
    return con


class Warehouse:
    """One DuckDB file built from one lake; `compiled_dir` keeps the SQL each model ran."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        lake_root: str | os.PathLike[str],
        compiled_dir: str | os.PathLike[str],
        sql_dir: str | os.PathLike[str] | None = None,
    ):
        self.db_path = Path(db_path)
        self.lake = Lake(lake_root)
        self.compiled_dir = Path(compiled_dir)
        self.sql_dir = Path(sql_dir) if sql_dir is not None else DEFAULT_SQL_DIR
        self._macros_ready = False
        self._models: list[Model] | None = None
        self._macros: str | None = None

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(self.db_path, read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def load(self) -> LoadResult:
        """Load lake files not loaded before into `raw.events`, `raw.snapshots`, `raw.baselines`."""
        with self.connect() as con:
            return _load.load(con, self.lake)

    def models(self) -> list[Model]:
        """Every model, in dependency order (read once per `Warehouse`)."""
        if self._models is None:
            self._models = discover(self.sql_dir, _load.SOURCES)
        return list(self._models)

    def _macro_text(self) -> str:
        if self._macros is None:
            self._macros = macro_statements(self.sql_dir / "macros.sql")
        return self._macros

    def increment(self, model: Model) -> Increment | None:
        """How a model can be built incrementally, or None if only in full.

        Every relation of one record type has an `id` column and holds rows of single ids; a
        table or scd2 model of a record type whose grain is per id can be rebuilt id by id.
        """
        if model.kind == "view" or model.record_type is None:
            return None
        if "id" not in (model.unique_key or model.grain):
            return None
        same_type = [m for m in self.models() if m.record_type == model.record_type]
        return Increment(
            sources=frozenset(m.key for m in same_type),
            views=frozenset(m.key for m in same_type if m.kind == "view"),
            macros=self._macro_text(),
        )

    def materialize(
        self,
        model: Model,
        con: duckdb.DuckDBPyConnection | None = None,
        full_refresh: bool = False,
    ) -> ModelResult:
        """Build one model (on `con` if given, else on a connection of its own); incrementally
        where it can be, unless `full_refresh`."""
        if con is None:
            with self.connect() as own:
                return self.materialize(model, own, full_refresh)
        if not self._macros_ready:
            _load.ensure_raw(con)
            create_macros(con, self.sql_dir / "macros.sql", self.compiled_dir)
            self._macros_ready = True
        return materialize(
            con, model, self.compiled_dir, self.increment(model), full_refresh=full_refresh
        )

    def build(self, full_refresh: bool = False) -> dict[str, ModelResult]:
        """Materialize every model in dependency order; returns results by model name."""
        with self.connect() as con:
            return {
                model.name: self.materialize(model, con, full_refresh) for model in self.models()
            }
