"""The Clever API client: HTTP and Clever only (no Parquet, DuckDB or Dagster)."""

from clever_elt.api.client import MAX_PAGE_SIZE, CleverClient
from clever_elt.api.errors import (
    CleverAuthError,
    CleverError,
    CleverNotFoundError,
    CleverUnknownHostError,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "CleverAuthError",
    "CleverClient",
    "CleverError",
    "CleverNotFoundError",
    "CleverUnknownHostError",
]
