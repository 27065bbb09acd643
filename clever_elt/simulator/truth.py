"""Ground truth: what the event stream implies, for tests to compare the pipeline's tables to.

State at instant T = the world before the first event, then every visible event with `created` <= T
applied in id order. Records are parsed fresh from the served bytes, so callers may mutate them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from clever_elt.simulator.timeline import ACTIONS, RECORD_TYPES, Timeline

_DELETED = ACTIONS.index("deleted")


@dataclass(frozen=True)
class Version:
    """One version of one object: live (or a tombstone) from `valid_from` until `valid_to`.

    `valid_from` is None for the state before the first event; `valid_to` is None while open.
    A tombstone (`is_deleted`) carries the last state, as the deleted event does.
    """

    id: str
    valid_from: datetime | None
    valid_to: datetime | None
    is_deleted: bool
    record: dict[str, Any]
    event_id: str | None


def _utc(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


class Truth:
    """Reads the timeline up to the simulator's visible horizon (`visible()` events)."""

    def __init__(self, timeline: Timeline, visible: Callable[[], int]):
        self._timeline = timeline
        self._visible = visible

    def _count(self, at: datetime | None) -> int:
        visible = self._visible()
        if at is None:
            return visible
        if at.tzinfo is None:
            raise ValueError("`at` must be timezone-aware (UTC)")
        return min(visible, self._timeline.count_at(int(at.timestamp() // 1)))

    def _check(self, record_type: str) -> int:
        if record_type not in RECORD_TYPES:
            raise KeyError(f"unknown record type {record_type!r}")
        return RECORD_TYPES.index(record_type)

    def current(self, record_type: str, at: datetime | None = None) -> dict[str, dict[str, Any]]:
        """Live records (id -> record) at `at` (default: the simulator's now)."""
        rt = self._check(record_type)
        tl = self._timeline
        refs: dict[str, int | None] = dict.fromkeys(tl.initial[record_type])
        for i in range(self._count(at)):
            if tl.record_type[i] != rt:
                continue
            if tl.action[i] == _DELETED:
                refs.pop(tl.object_ids[i], None)
            else:
                refs[tl.object_ids[i]] = i
        out = {}
        for object_id in sorted(refs):
            i = refs[object_id]
            raw = tl.initial[record_type][object_id] if i is None else tl.object_bytes(i)
            out[object_id] = orjson.loads(raw)
        return out

    def versions(self, record_type: str, at: datetime | None = None) -> list[Version]:
        """Every version of every object of a type, as known at `at` (default now).

        Sorted by object id, then time. Purged events still count: this is the full history.
        """
        rt = self._check(record_type)
        tl = self._timeline
        by_object: dict[str, list[Version]] = {
            object_id: [Version(object_id, None, None, False, orjson.loads(raw), None)]
            for object_id, raw in tl.initial[record_type].items()
        }
        for i in range(self._count(at)):
            if tl.record_type[i] != rt:
                continue
            object_id = tl.object_ids[i]
            when = _utc(tl.created[i])
            chain = by_object.setdefault(object_id, [])
            if chain:
                last = chain[-1]
                chain[-1] = Version(
                    object_id, last.valid_from, when, last.is_deleted, last.record, last.event_id
                )
            record = orjson.loads(tl.object_bytes(i))
            chain.append(
                Version(object_id, when, None, tl.action[i] == _DELETED, record, tl.ids[i])
            )
        return [version for object_id in sorted(by_object) for version in by_object[object_id]]
