"""Ground truth: what the event stream implies, for tests to compare the pipeline's tables to.

State at instant T = the world before the first event, then every visible event with `created` <= T
applied in id order. Records are parsed fresh from the served bytes, so callers may mutate them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from clever_elt.simulator.timeline import ACTIONS, RECORD_TYPES, Timeline, paused_gc

_DELETED = ACTIONS.index("deleted")


class Version(NamedTuple):
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
        with paused_gc():
            return {
                object_id: orjson.loads(
                    tl.initial[record_type][object_id] if i is None else tl.object_bytes(i)
                )
                for object_id, i in sorted(refs.items())
            }

    def versions(self, record_type: str, at: datetime | None = None) -> list[Version]:
        """Every version of every object of a type, as known at `at` (default now).

        Sorted by object id, then time. Purged events still count: this is the full history.
        """
        rt = self._check(record_type)
        tl = self._timeline
        initial = tl.initial[record_type]
        # Per object: the event indexes that made its versions (None = the initial world).
        made_by: dict[str, list[int | None]] = {object_id: [None] for object_id in initial}
        for i in range(self._count(at)):
            if tl.record_type[i] == rt:
                made_by.setdefault(tl.object_ids[i], []).append(i)
        out = []
        with paused_gc():
            for object_id in sorted(made_by):
                chain = made_by[object_id]
                for n, i in enumerate(chain):
                    following = chain[n + 1] if n + 1 < len(chain) else None
                    valid_to = None if following is None else _utc(tl.created[following])
                    if i is None:
                        record = orjson.loads(initial[object_id])
                        out.append(Version(object_id, None, valid_to, False, record, None))
                        continue
                    record = orjson.loads(tl.object_bytes(i))
                    deleted = tl.action[i] == _DELETED
                    valid_from = _utc(tl.created[i])
                    out.append(Version(object_id, valid_from, valid_to, deleted, record, tl.ids[i]))
        return out
