"""Dagster resources: the Clever API (or the built-in simulator), the data directory, DuckDB.

Each resource only hands out the object the layers below need; a test swaps one by passing another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clever_elt.api import CleverClient
from clever_elt.demo import demo_server
from clever_elt.lake.layout import Lake
from clever_elt.settings import DEFAULT_BASE_URL, DEFAULT_DATA_DIR, Settings, check_base_url
from clever_elt.warehouse import Warehouse


class CleverApiResource(dg.ConfigurableResource):
    """The Clever API of one district; with no token, the built-in simulator on a loopback port."""

    token: str | None = Field(
        default=None, description="District bearer token; unset runs the built-in simulator."
    )
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Clever API base URL.")
    page_size: int = Field(default=10000, description="Events per request (at most 10000).")

    @contextmanager
    def client(self, data_dir: Path) -> Iterator[CleverClient]:
        if self.token:
            yield CleverClient(check_base_url(self.base_url), self.token, page_size=self.page_size)
            return
        with demo_server(data_dir) as server:
            yield CleverClient(server.base_url, server.simulator.token, page_size=self.page_size)


class DataDirResource(dg.ConfigurableResource):
    """Where the lake, the warehouse and the SQL that ran live."""

    path: str = Field(default=DEFAULT_DATA_DIR, description="The data directory.")

    @property
    def root(self) -> Path:
        return Path(self.path)

    @property
    def lake(self) -> Lake:
        return Lake(self.root / "lake")

    def warehouse(self, duckdb: DuckDBResource) -> Warehouse:
        return Warehouse(duckdb.database, self.lake.root, self.root / "compiled")


def resources_from_settings(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources for one environment; the token stays an `EnvVar` so it is never shown."""
    token = dg.EnvVar("CLEVER_API_TOKEN") if settings.token else None
    return {
        "clever": CleverApiResource(token=token, base_url=settings.base_url),
        "data_dir": DataDirResource(path=str(settings.data_dir)),
        "duckdb": DuckDBResource(database=str(settings.warehouse_path)),
    }
