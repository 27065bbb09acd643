"""Where things live in the lake and how a file gets there: whole or not at all.

Paths follow DESIGN.md (Hive partitions). Files are written under a temporary name, fsynced, then
renamed; readers only ever glob `part-*.parquet`, so a half-written file is never seen.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"
_PART_NAME = re.compile(r"^part-(?P<first>[^-]+)-(?P<last>[^-]+)\.parquet$")
_EVENT_ID = re.compile(r"^[0-9a-f]{24}$")


class Lake:
    """The lake under one root directory (default `<data dir>/lake`)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"

    @property
    def manifests_dir(self) -> Path:
        return self.root / "baselines"

    def district_events_dir(self, district: str) -> Path:
        return self.events_dir / f"district={district}"

    def event_file(self, district: str, date: str, first_id: str, last_id: str) -> Path:
        return (
            self.district_events_dir(district)
            / f"date={date}"
            / f"part-{first_id}-{last_id}.parquet"
        )

    def snapshot_dir(self, record_type: str, district: str, taken: str) -> Path:
        return (
            self.snapshots_dir
            / f"record_type={record_type}"
            / f"district={district}"
            / f"taken={taken}"
        )

    def baseline_manifest(self, district: str, taken: str) -> Path:
        return self.manifests_dir / f"district={district}" / f"taken={taken}.json"

    def event_files(self, district: str | None = None) -> list[Path]:
        """Committed event files, sorted by (first, last) event id."""
        base = self.district_events_dir(district) if district else self.events_dir
        files = [p for p in base.glob("**/part-*.parquet") if _PART_NAME.match(p.name)]
        return sorted(files, key=lambda p: (_PART_NAME.match(p.name)["first"], p.name))

    def cursor(self, district: str) -> str | None:
        """The newest event id durably in the lake for a district (None when it holds none).

        Event ids are fixed-width hex, so the largest file-name `last` id is the newest event.
        """
        lasts = (
            _PART_NAME.match(p.name)["last"]
            for p in self.district_events_dir(district).glob("date=*/part-*.parquet")
        )
        return max((last for last in lasts if _EVENT_ID.match(last)), default=None)

    def remove_temp_files(self) -> int:
        """Delete leftovers of writes that a crash interrupted; returns how many."""
        removed = 0
        for path in self.root.glob(f"**/{TMP_PREFIX}*"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success fsync it and rename it into place.

    On any error the temporary file is removed and `final` is untouched (it never existed or
    keeps its old content).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{final.name}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
