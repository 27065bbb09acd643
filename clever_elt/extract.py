"""One extraction run: Clever events, and a Data-API baseline when one is needed, into the lake.

Only orchestration: the client fetches, lake/ decodes and writes. The cursor is read from the
lake's committed files and nowhere else, so a crash at any point leaves nothing to repair.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from clever_elt import spec
from clever_elt.api import CleverClient, CleverError
from clever_elt.lake.events import EventPage, EventPageDecoder, write_events
from clever_elt.lake.layout import Lake
from clever_elt.lake.snapshots import (
    BaselineManifest,
    RecordPageDecoder,
    baseline_manifests,
    new_taken,
    write_records,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class ExtractResult:
    """What one run did. `counts` is events per (record_type, action); `problems` counts events
    kept but flagged as not interpretable; `gap` is True when the cursor had expired and a
    resync baseline was taken."""

    district: str
    cursor_before: str | None
    cursor_after: str | None = None
    events_written: int = 0
    counts: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    problems: int = 0
    files_written: int = 0
    bytes_written: int = 0
    pages: int = 0
    baseline: BaselineManifest | None = None
    gap: bool = False
    duration_s: float = 0.0
    api_now: datetime | None = None


class _CursorLost(Exception):
    def __init__(self, event_id: str):
        super().__init__(event_id)
        self.event_id = event_id


def extract(client: CleverClient, lake: Lake, progress: Progress | None = None) -> ExtractResult:
    """Bring the lake up to date with the district's event stream; see DESIGN.md, "The flow"."""
    started = time.monotonic()
    lake.remove_temp_files()
    district = client.district_id()
    cursor = lake.cursor(district)
    result = ExtractResult(district=district, cursor_before=cursor)
    run = _Run(client, lake, result, progress)
    log.info("extracting district %s after cursor %s", district, cursor)

    manifests = baseline_manifests(lake, district)
    latest = manifests[-1] if manifests else run.baseline("initial")
    try:
        run.pull(*_resume_point(cursor, latest))
    except _CursorLost as lost:
        oldest = client.oldest_event_id()
        log.warning(
            "GAP: event %s is no longer retained by Clever (oldest retained event: %s); events "
            "after it may be lost, so a resync baseline is taken and every retained event pulled",
            lost.event_id,
            oldest,
        )
        result.gap = True
        latest = run.baseline("resync", lost_cursor=lost.event_id, first_retained_event_id=oldest)
        try:
            run.pull(*_resume_point(cursor, latest))
        except _CursorLost as again:
            raise CleverError(
                f"event {again.event_id} expired while the resync baseline was taken; run again"
            ) from again

    result.cursor_after = lake.cursor(district)
    result.api_now = client.server_now
    result.duration_s = time.monotonic() - started
    # Arrow keeps the pages' freed buffers for reuse (~70 MB after a large pull); the steps that
    # follow in this process (load, models) have no use for them.
    pa.default_memory_pool().release_unused()
    log.info(
        "extracted %d events (%d flagged) in %d pages, %d files, %.1f MB, %.1fs; cursor %s -> %s",
        result.events_written,
        result.problems,
        result.pages,
        result.files_written,
        result.bytes_written / 1e6,
        result.duration_s,
        result.cursor_before,
        result.cursor_after,
    )
    return result


def _resume_point(cursor: str | None, latest: BaselineManifest) -> tuple[str | None, str | None]:
    """(`starting_after` for the pull, the event that must still be retained for it to be whole).

    Right after a baseline (no event pulled since), every retained event is pulled and the
    baseline's anchor must still be retained; otherwise the pull continues after the cursor.
    """
    since_baseline = cursor is None or (latest.reason == "resync" and cursor == latest.lost_cursor)
    if since_baseline:
        return None, latest.anchor_event_id
    return cursor, cursor


class _Run:
    def __init__(
        self, client: CleverClient, lake: Lake, result: ExtractResult, progress: Progress | None
    ):
        self.client = client
        self.lake = lake
        self.result = result
        self.progress = progress
        self.events = EventPageDecoder()
        self.records = RecordPageDecoder()

    def pull(self, starting_after: str | None, must_be_retained: str | None) -> None:
        """Pull events page by page, each page committed (files in id order) before the next.

        `must_be_retained` is checked once the first page is in hand: if Clever still serves
        that event after answering, the page followed it without a gap (retention only moves
        forward), whatever either side's clock says.
        """
        params = {"starting_after": starting_after} if starting_after else None
        for page in self.client.iter_pages("/events", params, self.events):
            if must_be_retained is not None:
                if not self.client.event_exists(must_be_retained):
                    raise _CursorLost(must_be_retained)
                must_be_retained = None
            self._count_events(page)
            self._committed(write_events(self.lake, self.result.district, page))

    def baseline(
        self,
        reason: str,
        lost_cursor: str | None = None,
        first_retained_event_id: str | None = None,
    ) -> BaselineManifest:
        """Snapshot every record type, then write the manifest that makes the baseline count."""
        district = self.result.district
        anchor = self.client.newest_event_id()
        taken = new_taken()
        log.info("taking a baseline (%s) of district %s; anchor event %s", reason, district, anchor)
        record_types = spec.record_types()
        counts = dict.fromkeys(record_types, 0)
        streams = [(f"/{record_type}", None) for record_type in record_types]
        for index, page in self.client.iter_streams(streams, self.records):
            record_type = record_types[index]
            counts[record_type] += page.table.num_rows
            flagged = page.table.num_rows - page.table["problem"].null_count
            if flagged:
                log.warning("baseline: %d %s records kept but flagged", flagged, record_type)
            path = write_records(self.lake, record_type, district, taken, page)
            self._committed([path] if path else [])
        manifest = BaselineManifest(
            district=district,
            taken=taken,
            reason=reason,
            anchor_event_id=anchor,
            lost_cursor=lost_cursor,
            first_retained_event_id=first_retained_event_id,
            counts=counts,
        )
        manifest.write(self.lake)
        self.result.baseline = manifest
        return manifest

    def _count_events(self, page: EventPage) -> None:
        table = page.table
        self.result.events_written += table.num_rows
        self.result.problems += table.num_rows - table["problem"].null_count
        self.result.counts.update(page.counts())

    def _committed(self, files: list[Path]) -> None:
        self.result.pages += 1
        self.result.files_written += len(files)
        self.result.bytes_written += sum(path.stat().st_size for path in files)
        if self.progress is not None:
            self.progress(self.result.pages, self.result.events_written)
