"""One writer per data directory: an advisory file lock that the OS releases if the holder dies.

DuckDB allows one writing process; a crashed or killed sync must never block the next one, which a
lock file with a PID inside could. `flock` is released by the kernel when the process ends.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".clever-elt.lock"


class DataDirBusy(RuntimeError):
    """Another sync holds the data directory."""


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DataDirBusy(
                f"another clever-elt sync is using {data_dir}; wait for it to finish"
            ) from exc
        yield
    finally:
        os.close(fd)
