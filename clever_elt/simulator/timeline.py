"""Generates the district's initial world and its event stream, each event serialized once.

Events follow the real API's semantics (CLEVER_API.md): `data.object` is the full record,
`previous_attributes` holds the old values of what changed (whole `name`, sparse `roles`/`ext`,
whole arrays, never `last_modified`, never keys the update added). Only bytes and a few columns
are kept per event, so a world of millions of events fits in memory.
"""

from __future__ import annotations

import gc
import random
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import orjson

from clever_elt import spec
from clever_elt.simulator import world
from clever_elt.simulator.world import MISSING, Record, Roster, choose, randint

RECORD_TYPES = spec.record_types()
ACTIONS = spec.ACTIONS
USER_ROLES = tuple(spec.record_properties("users")["roles"]["properties"])
ROLE_BITS = {role: 1 << i for i, role in enumerate(USER_ROLES)}
SCALES = {"tiny": 3_000, "demo": 20_000}
# Event ids keep a 3-byte counter: beyond this many events it could wrap within one second.
MAX_EVENTS = 12_000_000
DAYS = 45
ROLLOVER_DAY = 17
# Keys whose previous value is reported as a sparse deep diff; every other changed key is
# reported whole (for `name` Clever sends the whole old object even if one part changed).
SPARSE_KEYS = frozenset({"roles", "ext"})
_DUMP = orjson.OPT_SORT_KEYS
_RT_INDEX = {rt: i for i, rt in enumerate(RECORD_TYPES)}
_ACTION_INDEX = {action: i for i, action in enumerate(ACTIONS)}
_TYPE_BYTES = {(rt, a): f"{rt}.{a}".encode() for rt in RECORD_TYPES for a in ACTIONS}

# An event list item is `{"data":{"created":"<24 chars>","data":{"object":<record>...`: the record
# starts at a fixed offset, so only its length is stored.
_ITEM_HEAD = b'{"data":{"created":"'
OBJECT_OFFSET = len(_ITEM_HEAD) + 24 + len(b'","data":{"object":')
EVENT_OFFSET = len(b'{"data":')
EVENT_URI_TAIL = len(b',"uri":"/v3.1/events/') + 24 + len(b'"}')


class Weighted:
    """A weighted random choice with precomputed cumulative weights (`random.choices` is slow)."""

    def __init__(self, pairs: tuple[tuple[float, Any], ...] | list[tuple[float, Any]]):
        self.values = [value for _, value in pairs]
        self.cumulative = list(accumulate(weight for weight, _ in pairs))

    def __call__(self, rng: random.Random) -> Any:
        return self.values[bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


def previous_attributes(old: Record, new: Record) -> Record:
    """Old values of the top-level keys that changed, as Clever reports them."""
    return _old_values(old, new, top=True)


def _old_values(old: Record, new: Record, top: bool) -> Record:
    """The old values of `old`'s keys that `new` changed: whole at the top level (`last_modified`
    aside), except in the sparse objects (SPARSE_KEYS), which list only their changed parts, at
    every depth."""
    out: Record = {}
    for key, before in old.items():
        if top and key == "last_modified":
            continue
        after = new.get(key, MISSING)
        if after is before:
            continue
        if after is MISSING:
            out[key] = before
        elif (
            (not top or key in SPARSE_KEYS) and isinstance(before, dict) and isinstance(after, dict)
        ):
            diff = _old_values(before, after, top=False)
            if diff:
                out[key] = diff
        elif before != after:
            out[key] = before
    return out


def schools_of(record_type: str, rec: Record) -> tuple[str, ...]:
    """The schools an event about `rec` concerns (what `GET /events?school=` filters on)."""
    if record_type == "schools":
        return (rec["id"],)
    if record_type == "sections":
        return (rec["school"],) if rec.get("school") else ()
    if record_type == "users":
        found: set[str] = set()
        for body in rec.get("roles", {}).values():
            if body.get("school"):
                found.add(body["school"])
            found.update(body.get("schools") or ())
        return tuple(sorted(found))
    return ()


def role_mask(rec: Record) -> int:
    mask = 0
    for role in rec.get("roles", {}):
        mask |= ROLE_BITS.get(role, 0)
    return mask


@dataclass
class Timeline:
    """A generated world: the records before the first event, then every event in id order."""

    district_id: str
    start: int
    initial: dict[str, dict[str, bytes]]  # record type -> id -> record JSON
    initial_roles: dict[str, int]  # user id -> role bits
    ids: list[str] = field(default_factory=list)
    created: array = field(default_factory=lambda: array("q"))
    record_type: bytearray = field(default_factory=bytearray)
    action: bytearray = field(default_factory=bytearray)
    object_ids: list[str] = field(default_factory=list)
    items: list[bytes] = field(default_factory=list)
    object_len: array = field(default_factory=lambda: array("I"))
    schools: list[tuple[str, ...]] = field(default_factory=list)
    roles: bytearray = field(default_factory=bytearray)

    def __len__(self) -> int:
        return len(self.ids)

    def object_bytes(self, i: int) -> memoryview:
        return memoryview(self.items[i])[OBJECT_OFFSET : OBJECT_OFFSET + self.object_len[i]]

    def event_bytes(self, i: int) -> memoryview:
        item = self.items[i]
        return memoryview(item)[EVENT_OFFSET : len(item) - EVENT_URI_TAIL]

    def event(self, i: int) -> dict[str, Any]:
        return orjson.loads(self.event_bytes(i))

    def count_at(self, second: int) -> int:
        """How many events have `created` <= `second`."""
        return bisect_right(self.created, second)


class _Generator:
    def __init__(self, seed: int, n_events: int, start: int, previous_attributes_at: str):
        self.rng = random.Random(seed)
        self.roster = Roster(self.rng, seed)
        self.event_mint = world.IdMint(seed, 2)
        self.target = n_events
        self.start = start
        self.top_level = previous_attributes_at == "top"
        self.state: dict[str, Record] = {}  # id -> latest record (the last state if deleted)
        self.record_type_of: dict[str, str] = {}
        self.live: set[str] = set()
        self.deleted: dict[str, world.LiveSet] = {rt: world.LiveSet() for rt in RECORD_TYPES}
        self.touched: set[str] = set()
        self._created_cache: dict[int, bytes] = {}
        self._user_edits = {role: Weighted(edits) for role, edits in world.USER_EDITS.items()}
        self._record_edits = {rt: Weighted(edits) for rt, edits in world.RECORD_EDITS.items()}
        self._update_role = Weighted(
            ((70, "student"), (12, "teacher"), (4, "staff"), (2, "district_admin"), (12, "contact"))
        )
        self._create_role = Weighted(
            ((70, "student"), (10, "teacher"), (4, "staff"), (1, "district_admin"), (15, "contact"))
        )
        self._delete_role = Weighted(
            ((70, "student"), (8, "teacher"), (4, "staff"), (18, "contact"))
        )
        self.timeline: Timeline

    # ---- the world before the first event --------------------------------------------------

    def _sizes(self) -> dict[str, int]:
        students = max(120, self.target // 25)
        return {
            "schools": max(3, students // 700),
            "terms": 2,
            "courses": max(12, students // 150),
            "resources": max(8, students // 2500),
            "student": students,
            "teacher": max(14, students // 14),
            "staff": max(4, students // 40),
            "district_admin": max(2, students // 5000),
            "contact": students * 3 // 5,
            "sections": max(24, students // 8),
        }

    @staticmethod
    def _pool_name(record_type: str, rec: Record) -> str:
        return next(iter(rec["roles"])) if record_type == "users" else record_type

    def _add(self, record_type: str, rec: Record) -> None:
        object_id = rec["id"]
        self.state[object_id] = rec
        self.record_type_of[object_id] = record_type
        self.live.add(object_id)
        self.roster.pool(self._pool_name(record_type, rec)).add(object_id)

    def build_world(self) -> None:
        ro, rng, sizes = self.roster, self.rng, self._sizes()
        before = self.start - 86400 * 400

        def created() -> float:
            return before - rng.random() * 86400 * 900

        self._add("districts", ro.district(self.start))
        for _ in range(sizes["schools"]):
            self._add("schools", ro.school(created()))
        year = int(world.iso_date(self.start)[:4])
        for offset in range(sizes["terms"]):
            self._add("terms", ro.term(year - sizes["terms"] + offset, created()))
        for _ in range(sizes["courses"]):
            self._add("courses", ro.course(created()))
        for _ in range(sizes["resources"]):
            self._add("resources", ro.resource(created()))
        for role in ("student", "teacher", "staff", "district_admin"):
            factory = getattr(ro, role)
            for _ in range(sizes[role]):
                self._add("users", factory(created()))
        for _ in range(sizes["contact"]):
            kids = [ro.pick_student() for _ in range(1 if rng.random() < 0.8 else 2)]
            self._add("users", ro.contact(created(), sorted(set(kids))))
        for _ in range(sizes["sections"]):
            self._add("sections", self._new_section(created()))

        initial: dict[str, dict[str, bytes]] = {rt: {} for rt in RECORD_TYPES}
        roles: dict[str, int] = {}
        for object_id in sorted(self.state):
            rt, rec = self.record_type_of[object_id], self.state[object_id]
            initial[rt][object_id] = orjson.dumps(rec, option=_DUMP)
            if rt == "users":
                roles[object_id] = role_mask(rec)
        self.timeline = Timeline(ro.district_id, self.start, initial, roles)
        self.hot = sorted(self.roster.pools["student"].items)[:3]

    def _new_section(self, created: float) -> Record:
        ro, rng = self.roster, self.rng
        students = ro.pools["student"].items
        size = min(len(students), randint(rng, 12, 30))
        teacher = ro.pick_teacher() if rng.random() < 0.95 else None
        return ro.section(created, choose(rng, ro.school_ids), teacher, rng.sample(students, size))

    # ---- events ------------------------------------------------------------------------------

    def _created_json(self, second: int) -> bytes:
        cached = self._created_cache.get(second)
        if cached is None:
            cached = self._created_cache[second] = world.iso_ms(second).encode()
        return cached

    def _emit(
        self, second: int, record_type: str, action: str, rec: Record, pa: Record | None = None
    ) -> None:
        event_str = self.event_mint(second)
        event_id = event_str.encode()
        obj = orjson.dumps(rec, option=_DUMP)
        if pa is None:
            middle = [b'},"id":"', event_id, b'","type":"']
        elif self.top_level:
            pa_json = orjson.dumps(pa, option=_DUMP)
            middle = [b'},"id":"', event_id, b'","previous_attributes":', pa_json, b',"type":"']
        else:
            pa_json = orjson.dumps(pa, option=_DUMP)
            middle = [b',"previous_attributes":', pa_json, b'},"id":"', event_id, b'","type":"']
        item = b"".join(
            [
                _ITEM_HEAD,
                self._created_json(second),
                b'","data":{"object":',
                obj,
                *middle,
                _TYPE_BYTES[record_type, action],
                b'"},"uri":"/v3.1/events/',
                event_id,
                b'"}',
            ]
        )
        tl = self.timeline
        tl.ids.append(event_str)
        tl.created.append(second)
        tl.record_type.append(_RT_INDEX[record_type])
        tl.action.append(_ACTION_INDEX[action])
        tl.object_ids.append(rec["id"])
        tl.items.append(item)
        tl.object_len.append(len(obj))
        tl.schools.append(schools_of(record_type, rec))
        tl.roles.append(role_mask(rec) if record_type == "users" else 0)
        self.touched.add(rec["id"])

    def _bump_modified(self, rec: Record, second: int) -> Record:
        # Clever sometimes leaves last_modified alone on a real change: it is not a change time.
        if "last_modified" in rec and self.rng.random() < 0.9:
            out = dict(rec)
            out["last_modified"] = world.iso_ms(second - 20 - 100 * self.rng.random())
            return out
        return rec

    def _pick(self, pool: str) -> str | None:
        return self.roster.pool(pool).pick(self.rng, self.touched)

    def _edited(self, record_type: str, rec: Record) -> tuple[Record, Record] | None:
        """A changed copy of `rec` and its previous_attributes, or None if no edit applies."""
        ro, rng = self.roster, self.rng
        if record_type == "users":
            edits = self._user_edits[self._pool_name(record_type, rec)]
        else:
            edits = self._record_edits[record_type]
        for _ in range(4):
            new = edits(rng)(ro, rec)
            if new is None:
                continue
            pa = previous_attributes(rec, new)
            if not pa:
                continue
            if record_type == "users" and rng.random() < 0.08:
                new = choose(rng, world.USER_ADDITIONS)(ro, new) or new
            return new, pa
        return None

    def update(self, second: int, record_type: str, object_id: str | None = None) -> bool:
        if object_id is None:
            pool = self._update_role(self.rng) if record_type == "users" else record_type
            object_id = self._pick(pool)
        if object_id is None or object_id in self.touched or object_id not in self.live:
            return False
        old = self.state[object_id]
        edited = self._edited(record_type, old)
        if edited is None:
            return False
        new, pa = edited
        new = self._bump_modified(new, second)
        self._emit(second, record_type, "updated", new, pa)
        self.state[object_id] = new
        return True

    def create(self, second: int, record_type: str) -> bool:
        ro, rng = self.roster, self.rng
        created = second - rng.uniform(30, 3000)
        if record_type == "users":
            role = self._create_role(rng)
            if role == "contact":
                rec = ro.contact(created, [ro.pick_student()])
            else:
                rec = getattr(ro, role)(created)
        elif record_type == "sections":
            rec = self._new_section(created)
        elif record_type == "terms":
            rec = ro.term(int(world.iso_date(second)[:4]), created)
        else:
            rec = getattr(ro, record_type.removesuffix("s"))(created)
        self._emit(second, record_type, "created", rec)
        self._add(record_type, rec)
        return True

    def recreate(self, second: int, record_type: str) -> bool:
        """A deleted id comes back (`*.created` for an id that existed before)."""
        object_id = self.deleted[record_type].pick(self.rng, self.touched)
        if object_id is None:
            return False
        rec = self.state[object_id]
        if self.rng.random() < 0.4:
            rec = (self._edited(record_type, rec) or (rec,))[0]
        rec = self._bump_modified(rec, second)
        self.deleted[record_type].remove(object_id)
        self._emit(second, record_type, "created", rec)
        self._add(record_type, rec)
        return True

    def reshare(self, second: int, record_type: str) -> bool:
        """`*.created` for an id that is live already (a re-shared object)."""
        pool = choose(self.rng, ("student", "teacher")) if record_type == "users" else record_type
        object_id = self._pick(pool)
        if object_id is None:
            return False
        rec = self._bump_modified(self.state[object_id], second)
        self._emit(second, record_type, "created", rec)
        self.state[object_id] = rec
        return True

    def delete(self, second: int, record_type: str) -> bool:
        pool = self._delete_role(self.rng) if record_type == "users" else record_type
        # Keep a few schools and terms alive: people and sections point at them.
        if pool in ("schools", "terms") and len(self.roster.pool(pool)) <= 3:
            return False
        object_id = self._pick(pool)
        if object_id is None:
            return False
        self._emit(second, record_type, "deleted", self.state[object_id])
        self.roster.pool(pool).remove(object_id)
        self.live.discard(object_id)
        self.deleted[record_type].add(object_id)
        return True

    # (weight, record type, method) of what one event in an ordinary sync burst does.
    KINDS = (
        (60.0, "users", "update"),
        (4.0, "users", "create"),
        (1.2, "users", "recreate"),
        (0.6, "users", "reshare"),
        (3.0, "users", "delete"),
        (14.0, "sections", "update"),
        (1.5, "sections", "create"),
        (0.3, "sections", "recreate"),
        (1.0, "sections", "delete"),
        (0.6, "schools", "update"),
        (0.4, "terms", "update"),
        (1.0, "courses", "create"),
        (1.0, "courses", "update"),
        (0.3, "courses", "delete"),
        (0.1, "courses", "reshare"),
        (0.8, "resources", "create"),
        (1.2, "resources", "update"),
        (0.4, "resources", "delete"),
        (0.15, "resources", "recreate"),
    )
    # Structural changes that do not grow with the district: (chance per sync, type, method).
    RARE = (
        (0.06, "schools", "create"),
        (0.04, "schools", "delete"),
        (0.04, "terms", "create"),
        (0.03, "terms", "delete"),
    )

    def burst(self, t0: int, size: int, rollover: bool) -> None:
        rng = self.rng
        # Hundreds of events share a second; a huge burst still ends long before the next day's.
        rate = max(randint(rng, 20, 400), size // 3600)
        ids = self.timeline.ids
        start = len(ids)
        self.touched = set()

        def second() -> int:
            return t0 + (len(ids) - start) // rate

        # Every sync updates the district's last_sync first.
        district = self.timeline.district_id
        old = self.state[district]
        new = world.set_in(old, ("last_sync",), world.iso_ms(t0 - rng.uniform(30, 90)))
        if rng.random() < 0.1:
            new = world.RECORD_EDITS["districts"][0][1](self.roster, new)
        self._emit(second(), "districts", "updated", new, previous_attributes(old, new))
        self.state[district] = new

        kinds = self.KINDS
        pick = Weighted([(w * (5 if rollover and rt == "sections" else 1), (rt, method))
                         for w, rt, method in kinds])  # fmt: skip
        planned = [pick(rng) for _ in range(max(0, size - 1))]
        planned += [(rt, method) for chance, rt, method in self.RARE if rng.random() < chance]
        if rollover:
            planned.append(("terms", "create"))
        order = {rt: i for i, rt in enumerate(RECORD_TYPES)}
        planned.sort(key=lambda kind: order[kind[0]])
        hot_done = False
        for record_type, method in planned:
            if record_type == "users" and not hot_done:
                # A few objects change in every sync: they get dozens of versions.
                for object_id in self.hot:
                    self.update(second(), "users", object_id)
                hot_done = True
            getattr(self, method)(second(), record_type)

    def run(self) -> Timeline:
        self.build_world()
        rng = self.rng
        weights = [
            4.0 if day == ROLLOVER_DAY else 0.35 if day % 7 in (5, 6) else 1.0
            for day in range(DAYS)
        ]
        total = sum(weights)
        for day, weight in enumerate(weights):
            # Some planned events find nothing to act on; ask for a few more to land near target.
            size = max(2, round(self.target * 1.05 * weight / total))
            t0 = self.start + day * 86400 + 7200 + randint(rng, 0, 5400)
            self.burst(t0, size, rollover=day == ROLLOVER_DAY)
        return self.timeline


def generate(seed: int, scale: str | int, start: int, previous_attributes_at: str) -> Timeline:
    """The world and timeline for a seed and scale; the same inputs give the same bytes."""
    if isinstance(scale, str):
        if scale.isdigit():
            scale = int(scale)
        elif scale in SCALES:
            scale = SCALES[scale]
        else:
            raise ValueError(f"unknown scale {scale!r}: use tiny, demo or a number of events")
    if not 100 <= scale <= MAX_EVENTS:
        raise ValueError(f"scale must be between 100 and {MAX_EVENTS} events, got {scale}")
    if previous_attributes_at not in ("data", "top"):
        raise ValueError("previous_attributes_at must be 'data' or 'top'")
    with paused_gc():
        return _Generator(seed, scale, start, previous_attributes_at).run()


@contextmanager
def paused_gc() -> Iterator[None]:
    """Build millions of surviving containers without the cyclic GC rescanning them again and
    again (it made generating and parsing a large world several times slower)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
