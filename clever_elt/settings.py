"""Settings from the environment: the Clever token, the API base URL and the data directory.

Validation happens here, once, so every entry point (CLI, Dagster resources) fails the same way on
a bad setting. The token is never part of any message.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.clever.com/v3.1"
DEFAULT_DATA_DIR = "data"


class SettingsError(ValueError):
    """A setting that cannot work; the message names the setting and what to do."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """The base URL without a trailing slash; plain http is accepted for loopback hosts only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"CLEVER_API_BASE_URL must be an http(s) URL such as {DEFAULT_BASE_URL}, got {url!r}"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SettingsError(
            "CLEVER_API_BASE_URL uses plain http for a non-loopback host "
            f"({parts.hostname}); use https so the token is never sent in the clear"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class Settings:
    token: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    data_dir: Path = Path(DEFAULT_DATA_DIR)

    @property
    def demo(self) -> bool:
        """No token: run against the built-in simulator."""
        return not self.token

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    def create_data_dir(self) -> None:
        """Create the data directory if missing; SettingsError if it cannot be."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(
                f"CLEVER_ELT_DATA_DIR cannot be created: {self.data_dir}: {exc.strerror}"
            ) from exc

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        token = (env.get("CLEVER_API_TOKEN") or "").strip() or None
        base_url = check_base_url(env.get("CLEVER_API_BASE_URL") or DEFAULT_BASE_URL)
        data_dir = Path(env.get("CLEVER_ELT_DATA_DIR") or DEFAULT_DATA_DIR)
        if data_dir.exists() and not data_dir.is_dir():
            raise SettingsError(
                f"CLEVER_ELT_DATA_DIR points at a file, not a directory: {data_dir}"
            )
        return cls(token=token, base_url=base_url, data_dir=data_dir)
