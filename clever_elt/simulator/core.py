"""The simulated Clever API without the socket: clock, retention, paging, auth, limits, faults.

`Simulator.respond()` turns one request into a `Response` whose body is a list of byte slices of
events serialized once at generation; `server.py` only moves those bytes. Never imported by the
pipeline's own layers.
"""

from __future__ import annotations

import math
import random
import threading
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import orjson

from clever_elt.simulator.timeline import (
    RECORD_TYPES,
    ROLE_BITS,
    Timeline,
    generate,
    paused_gc,
)
from clever_elt.simulator.truth import Truth

API_PREFIX = "/v3.1"
DEFAULT_START = datetime(2026, 8, 1, tzinfo=UTC)
# Default clock: the first 8 days of the 45-day timeline are past retention, 7 days are to come.
DEFAULT_NOW_AFTER = timedelta(days=38)
RETENTION = timedelta(days=30)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
LARGE_PAGE = 5_000
JSON = "application/json; charset=utf-8"
_ACTIONS_DELETED = 2
_CACHE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Faults:
    """Fractions of API requests answered badly; drawn from a RNG seeded with `seed`.

    429: rate limited; 5xx: one of 500/502/503/504; slow: answered after `slow_seconds`;
    truncated: the body is cut off mid-JSON (either a short body with a matching Content-Length,
    or a connection closed before the announced Content-Length). `rate_504_large_page` is drawn
    separately, for requests with `limit` >= 5000 only: the gateway timeouts of big pages that a
    client must answer with a smaller page.
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    rate_truncated: float = 0.0
    seed: int = 0
    rate_504_large_page: float = 0.0

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_5xx, self.rate_slow, self.rate_truncated)
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0:
            raise ValueError(f"fault rates must be within 0..1 and sum to at most 1: {self}")
        if not 0.0 <= self.rate_504_large_page <= 1.0:
            raise ValueError("rate_504_large_page must be within 0..1")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")


@dataclass
class Response:
    """One answer: status, headers and the body as parts (sent back to back).

    `slow_seconds` and `truncate` are fault directives for the server: wait before answering, and
    `("short", n)` send only n bytes as the whole body / `("abort", n)` send n bytes of the
    announced body, then close the connection.
    """

    status: int
    parts: list[bytes | memoryview]
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON
    slow_seconds: float = 0.0
    truncate: tuple[str, int] | None = None

    @property
    def length(self) -> int:
        return sum(len(p) for p in self.parts)

    def body(self) -> bytes:
        return b"".join(self.parts)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _json(status: int, payload: Any) -> Response:
    return Response(status, [orjson.dumps(payload)])


def _error(status: int, message: str) -> Response:
    return _json(status, {"message": message})


_GATEWAY_PAGES = {
    502: b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",  # noqa: E501
    504: b"<html><head><title>504 Gateway Time-out</title></head><body><h1>504 Gateway Time-out</h1></body></html>",  # noqa: E501
}


def _is_object_id(value: str) -> bool:
    return len(value) == 24 and all(c in "0123456789abcdef" for c in value)


class _ByteCache:
    """Rendered page bodies, least recently used dropped first once over a byte budget."""

    def __init__(self, max_bytes: int):
        self._max = max_bytes
        self._size = 0
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: bytes) -> None:
        with self._lock:
            if key in self._items or len(value) > self._max:
                return
            self._items[key] = value
            self._size += len(value)
            while self._size > self._max:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


class Simulator:
    """A deterministic Clever district (world + event timeline) and the API that serves it."""

    def __init__(
        self,
        seed: int = 1,
        scale: str | int = "tiny",
        token: str = "TEST_TOKEN",
        faults: Faults | None = None,
        previous_attributes_at: str = "data",
        start: datetime | None = None,
        *,
        now: datetime | None = None,
        rate_limit: int = 1200,
        rate_window_seconds: float = 60.0,
        retention: timedelta = RETENTION,
    ):
        start = start or DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        self.seed = seed
        self.scale = scale
        self.token = token
        self.start = start.astimezone(UTC)
        self.previous_attributes_at = previous_attributes_at
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.retention = retention
        self.timeline: Timeline = generate(
            seed, scale, int(self.start.timestamp()), previous_attributes_at
        )
        self.truth = Truth(self.timeline, lambda: self._visible)
        self._lock = threading.RLock()
        self._cache = _ByteCache(_CACHE_BYTES)
        self._views: dict[tuple, list[int]] = {}
        self._budget: dict[str | None, tuple[float, int]] = {}
        self._records_visible = -1
        self._records: dict[str, dict[str, int | None]] = {}
        self._record_ids: dict[tuple, list[str]] = {}
        self._now = 0.0
        self._visible = 0
        self._first_retained = 0
        self.faults = faults or Faults()
        self.set_now(now or self.start + DEFAULT_NOW_AFTER)

    # ---- the clock -----------------------------------------------------------------------

    @property
    def district_id(self) -> str:
        return self.timeline.district_id

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    @property
    def visible_events(self) -> int:
        """How many events exist at `now` (purged ones included)."""
        return self._visible

    @property
    def first_retained_index(self) -> int:
        return self._first_retained

    @property
    def newest_event_id(self) -> str | None:
        return self.timeline.ids[self._visible - 1] if self._visible else None

    @property
    def oldest_retained_event_id(self) -> str | None:
        with self._lock:
            first, visible = self._first_retained, self._visible
        return self.timeline.ids[first] if first < visible else None

    def _retain_from(self) -> None:
        cutoff = math.ceil(self._now - self.retention.total_seconds())
        self._first_retained = min(bisect_left(self.timeline.created, cutoff), self._visible)

    def set_now(self, when: datetime) -> None:
        """Move the clock; every event with `created` <= `when` becomes visible."""
        if when.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        with self._lock:
            self._now = when.timestamp()
            self._visible = self.timeline.count_at(math.floor(self._now))
            self._retain_from()

    def advance(self, seconds: float | None = None, events: int | None = None) -> None:
        """Move the clock forward by `seconds`, or until exactly `events` more events exist.

        With `events`, the clock stops at the last new event's second; later events of that same
        second stay invisible until the clock moves again.
        """
        if (seconds is None) == (events is None):
            raise ValueError("give exactly one of seconds= or events=")
        with self._lock:
            if seconds is not None:
                self.set_now(self.now + timedelta(seconds=seconds))
                return
            if events < 0:
                raise ValueError("events must be >= 0")
            target = min(len(self.timeline), self._visible + events)
            if target > self._visible:
                self._now = max(self._now, float(self.timeline.created[target - 1]))
                self._visible = target
                self._retain_from()

    def served_events(self) -> list[dict[str, Any]]:
        """Every event created so far (purged ones included), in id order, as parsed JSON."""
        with paused_gc():
            return [self.timeline.event(i) for i in range(self._visible)]

    # ---- faults and limits -----------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._fault_rng = random.Random(faults.seed)

    def _draw_fault(self) -> tuple[str, Any] | None:
        faults = self._faults
        with self._lock:
            rng = self._fault_rng
            u = rng.random()
            for kind, rate in (
                ("429", faults.rate_429),
                ("5xx", faults.rate_5xx),
                ("slow", faults.rate_slow),
                ("truncated", faults.rate_truncated),
            ):
                if u < rate:
                    if kind == "5xx":
                        return kind, rng.choice((500, 502, 503, 504))
                    if kind == "truncated":
                        return kind, (rng.choice(("short", "abort")), rng.random())
                    return kind, None
                u -= rate
        return None

    def _take_budget(self, token: str | None) -> tuple[bool, dict[str, str]]:
        window = self.rate_window_seconds
        now = time.time()
        with self._lock:
            window_start = now - now % window
            started, used = self._budget.get(token, (window_start, 0))
            if started != window_start:
                started, used = window_start, 0
            allowed = used < self.rate_limit
            if allowed:
                used += 1
            self._budget[token] = (started, used)
        headers = {
            "x-ratelimit-bucket": "bearer",
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(max(0, self.rate_limit - used)),
            "x-ratelimit-reset": str(math.ceil(started + window)),
        }
        return allowed, headers

    # ---- requests --------------------------------------------------------------------------

    def respond(self, method: str, target: str, authorization: str | None) -> Response:
        """Answer one API request (`target` = path and query as sent, e.g. `/v3.1/events?...`)."""
        token = None
        if authorization and authorization.startswith("Bearer "):
            token = authorization[len("Bearer ") :].strip()
        allowed, limit_headers = self._take_budget(token)
        if token != self.token:
            response = _error(401, "Unauthorized: a valid district bearer token is required")
        elif not allowed:
            response = _error(429, "Too Many Requests: rate limit exceeded")
        else:
            response = self._faulty(method, target, limit_headers)
        response.headers.update(limit_headers)
        return response

    def _large_page_timeout(self, target: str) -> bool:
        if not self._faults.rate_504_large_page:
            return False
        limits = parse_qs(urlsplit(target).query).get("limit", ["0"])
        if not (limits[-1].isdigit() and int(limits[-1]) >= LARGE_PAGE):
            return False
        with self._lock:
            return self._fault_rng.random() < self._faults.rate_504_large_page

    def _faulty(self, method: str, target: str, limit_headers: dict[str, str]) -> Response:
        if self._large_page_timeout(target):
            return Response(504, [_GATEWAY_PAGES[504]], content_type="text/html")
        fault = self._draw_fault()
        if fault is not None and fault[0] == "429":
            limit_headers["x-ratelimit-remaining"] = "0"
            return _error(429, "Too Many Requests: rate limit exceeded")
        if fault is not None and fault[0] == "5xx":
            status = fault[1]
            if status in _GATEWAY_PAGES:
                return Response(status, [_GATEWAY_PAGES[status]], content_type="text/html")
            return _error(status, "Internal Server Error" if status == 500 else "Unavailable")
        response = self._route(method, target)
        if fault is not None and fault[0] == "slow":
            response.slow_seconds = self._faults.slow_seconds
        elif fault is not None and fault[0] == "truncated" and response.status == 200:
            variant, fraction = fault[1]
            response.truncate = (variant, int(response.length * (0.1 + 0.8 * fraction)))
        return response

    def _route(self, method: str, target: str) -> Response:
        split = urlsplit(target)
        query = parse_qs(split.query, keep_blank_values=True)
        parts = split.path.rstrip("/").split("/")
        if split.path.startswith(API_PREFIX + "/") and len(parts) in (3, 4):
            if method != "GET":
                return _error(405, f"method {method} not allowed")
            resource = parts[2]
            try:
                if resource == "events":
                    if len(parts) == 4:
                        return self._event(parts[3])
                    return self._list_events(target, query)
                if resource in RECORD_TYPES:
                    if len(parts) == 4:
                        return self._record(resource, parts[3])
                    return self._list_records(resource, target, query)
            except ApiError as exc:
                return _error(exc.status, exc.message)
        return _error(404, f"Not Found: {split.path}")

    # ---- paging ------------------------------------------------------------------------------

    @staticmethod
    def _one(query: dict[str, list[str]], name: str) -> str | None:
        values = query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise ApiError(400, f"{name} given more than once")
        return values[0]

    def _limit(self, query: dict[str, list[str]]) -> int:
        raw = self._one(query, "limit")
        if raw is None:
            return DEFAULT_LIMIT
        try:
            limit = int(raw)
        except ValueError:
            raise ApiError(400, f"limit must be an integer, got {raw!r}") from None
        if limit > MAX_LIMIT:
            raise ApiError(413, f"limit {limit} is above the maximum of {MAX_LIMIT}")
        if limit < 1:
            raise ApiError(400, f"limit must be at least 1, got {limit}")
        return limit

    def _cursors(self, query: dict[str, list[str]]) -> tuple[str | None, str | None]:
        after = self._one(query, "starting_after")
        before = self._one(query, "ending_before")
        if after is not None and not _is_object_id(after):
            raise ApiError(400, f"starting_after must be an id, got {after!r}")
        if before is not None and before != "last" and not _is_object_id(before):
            raise ApiError(400, f"ending_before must be an id or 'last', got {before!r}")
        return after, before

    @staticmethod
    def _window(
        ids_lo: int, ids_hi: int, limit: int, from_end: bool
    ) -> tuple[int, int]:  # positions [a, b) of one page inside the candidates [lo, hi)
        if ids_hi <= ids_lo:
            return ids_lo, ids_lo
        if from_end:
            return max(ids_lo, ids_hi - limit), ids_hi
        return ids_lo, min(ids_hi, ids_lo + limit)

    @staticmethod
    def _links(
        path: str,
        target: str,
        keep: list[tuple[str, str]],
        first: str | None,
        last: str | None,
        after: str | None,
        full: bool,
    ) -> bytes:
        def uri(extra: tuple[str, str]) -> str:
            return f"{path}?{urlencode([*keep, extra], quote_via=quote)}"

        links = [{"rel": "self", "uri": target}]
        prev_cursor = first or after
        if prev_cursor:
            links.append({"rel": "prev", "uri": uri(("ending_before", prev_cursor))})
        if full and last:
            links.append({"rel": "next", "uri": uri(("starting_after", last))})
        return orjson.dumps(links)

    @staticmethod
    def _kept_params(query: dict[str, list[str]], names: tuple[str, ...]) -> list[tuple[str, str]]:
        return [(name, value) for name in names for value in query.get(name, [])]

    def _page(self, cache_key: tuple, items: Callable[[], list[bytes | memoryview]], links: bytes):
        body = self._cache.get(cache_key)
        if body is None:
            body = b",".join(items())
            self._cache.put(cache_key, body)
        return Response(200, [b'{"data":[', body, b'],"links":', links, b"}"])

    # ---- events ------------------------------------------------------------------------------

    def _view(self, record_types: frozenset[str] | None, school: str | None) -> list[int] | None:
        """Indexes of the events a filter selects (None = all events), built once per filter."""
        if record_types is None and school is None:
            return None
        key = (record_types, school)
        view = self._views.get(key)
        if view is None:
            tl = self.timeline
            wanted = (
                {RECORD_TYPES.index(rt) for rt in record_types}
                if record_types
                else set(range(len(RECORD_TYPES)))
            )
            view = [
                i
                for i, rt in enumerate(tl.record_type)
                if rt in wanted and (school is None or school in tl.schools[i])
            ]
            with self._lock:
                self._views[key] = view
        return view

    def _list_events(self, target: str, query: dict[str, list[str]]) -> Response:
        limit = self._limit(query)
        after, before = self._cursors(query)
        record_types = None
        if "record_type" in query:
            requested = [v for value in query["record_type"] for v in value.split(",") if v]
            unknown = sorted(set(requested) - set(RECORD_TYPES))
            if unknown:
                raise ApiError(400, f"unknown record_type {', '.join(unknown)}")
            record_types = frozenset(requested) or None
        school = self._one(query, "school")
        with self._lock:
            visible, first = self._visible, self._first_retained
        tl = self.timeline
        lo, hi = first, visible
        # An expired cursor is not an error: the answer silently starts at the oldest retained.
        if after is not None:
            lo = max(lo, bisect_right(tl.ids, after))
        if before is not None and before != "last":
            hi = min(hi, bisect_left(tl.ids, before))
        view = self._view(record_types, school)
        if view is not None:
            lo, hi = bisect_left(view, lo), bisect_left(view, hi)
        a, b = self._window(lo, hi, limit, from_end=before is not None and after is None)
        indexes = range(a, b) if view is None else view[a:b]
        ids = [tl.ids[i] for i in (indexes[0], indexes[-1])] if len(indexes) else [None, None]
        keep = self._kept_params(query, ("limit", "record_type", "school"))
        links = self._links(
            f"{API_PREFIX}/events", target, keep, ids[0], ids[1], after, b - a == limit
        )
        key = ("events", record_types, school, a, b)
        return self._page(key, lambda: [tl.items[i] for i in indexes], links)

    def _event(self, event_id: str) -> Response:
        tl = self.timeline
        with self._lock:
            visible, first = self._visible, self._first_retained
        i = bisect_left(tl.ids, event_id)
        if not (first <= i < visible and tl.ids[i] == event_id):
            raise ApiError(404, f"event {event_id} not found")
        self_link = orjson.dumps([{"rel": "self", "uri": f"{API_PREFIX}/events/{event_id}"}])
        return Response(200, [b'{"data":', tl.event_bytes(i), b',"links":', self_link, b"}"])

    # ---- Data API ----------------------------------------------------------------------------

    def _current_refs(self, visible: int) -> dict[str, dict[str, int | None]]:
        """id -> where its live record is (None: the initial world; i: event i), per type."""
        with self._lock:
            tl = self.timeline
            if self._records_visible > visible or self._records_visible < 0:
                self._records = {rt: dict.fromkeys(tl.initial[rt]) for rt in RECORD_TYPES}
                self._records_visible = 0
            for i in range(self._records_visible, visible):
                refs = self._records[RECORD_TYPES[tl.record_type[i]]]
                if tl.action[i] == _ACTIONS_DELETED:
                    refs.pop(tl.object_ids[i], None)
                else:
                    refs[tl.object_ids[i]] = i
            if self._records_visible != visible:
                self._record_ids = {}
            self._records_visible = visible
            return self._records

    def _role_of(self, object_id: str, ref: int | None) -> int:
        if ref is None:
            return self.timeline.initial_roles[object_id]
        return self.timeline.roles[ref]

    def _record_bytes(
        self, record_type: str, object_id: str, ref: int | None
    ) -> bytes | memoryview:
        if ref is None:
            return self.timeline.initial[record_type][object_id]
        return self.timeline.object_bytes(ref)

    def _list_records(self, record_type: str, target: str, query: dict[str, list[str]]) -> Response:
        limit = self._limit(query)
        after, before = self._cursors(query)
        role = self._one(query, "role") if record_type == "users" else None
        if role is not None and role not in ROLE_BITS:
            raise ApiError(400, f"unknown role {role!r}; use one of {', '.join(ROLE_BITS)}")
        with self._lock:
            visible = self._visible
            refs = self._current_refs(visible)[record_type]
            key = (record_type, role)
            ids = self._record_ids.get(key)
            if ids is None:
                bit = ROLE_BITS[role] if role else 0
                ids = sorted(i for i, ref in refs.items() if not bit or self._role_of(i, ref) & bit)
                self._record_ids[key] = ids
            lo, hi = 0, len(ids)
            if after is not None:
                lo = bisect_right(ids, after)
            if before is not None and before != "last":
                hi = bisect_left(ids, before)
            a, b = self._window(lo, hi, limit, from_end=before is not None and after is None)
            page = ids[a:b]
            page_refs = [refs[i] for i in page]
        prefix = f',"uri":"{API_PREFIX}/{record_type}/'.encode()

        def items() -> list[bytes]:
            out = []
            for object_id, ref in zip(page, page_refs, strict=True):
                record = self._record_bytes(record_type, object_id, ref)
                out.append(b"".join([b'{"data":', record, prefix, object_id.encode(), b'"}']))
            return out

        keep = self._kept_params(query, ("limit", "role"))
        first, last = (page[0], page[-1]) if page else (None, None)
        links = self._links(
            f"{API_PREFIX}/{record_type}", target, keep, first, last, after, b - a == limit
        )
        return self._page(("records", record_type, role, visible, a, b), items, links)

    def _record(self, record_type: str, object_id: str) -> Response:
        with self._lock:
            refs = self._current_refs(self._visible)[record_type]
            if object_id not in refs:
                raise ApiError(404, f"{record_type} {object_id} not found")
            body = self._record_bytes(record_type, object_id, refs[object_id])
        self_link = orjson.dumps(
            [{"rel": "self", "uri": f"{API_PREFIX}/{record_type}/{object_id}"}]
        )
        return Response(200, [b'{"data":', body, b',"links":', self_link, b"}"])

    # ---- admin (out-of-process control for benchmarks and subprocess tests) -------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "now": self.now.isoformat().replace("+00:00", "Z"),
                "district_id": self.district_id,
                "visible_events": self._visible,
                "total_events": len(self.timeline),
                "newest_event_id": self.newest_event_id,
                "oldest_retained_event_id": self.oldest_retained_event_id,
                "faults": asdict(self._faults),
            }

    def admin(self, method: str, target: str) -> Response:
        split = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        path = split.path.rstrip("/")
        try:
            if path == "/_sim/state" and method == "GET":
                return _json(200, self.state())
            if path == "/_sim/advance" and method == "POST":
                if "events" in query:
                    self.advance(events=int(query["events"]))
                else:
                    self.advance(seconds=float(query.get("seconds", "0")))
                return _json(200, self.state())
            if path == "/_sim/now" and method == "POST":
                self.set_now(datetime.fromisoformat(query["now"].replace("Z", "+00:00")))
                return _json(200, self.state())
            if path == "/_sim/faults" and method == "POST":
                types = {f.name: type(getattr(Faults(), f.name)) for f in fields(Faults)}
                self.faults = Faults(**{k: types[k](v) for k, v in query.items() if k in types})
                return _json(200, self.state())
            if path.startswith("/_sim/truth/") and method == "GET":
                record_type = path.rsplit("/", 1)[1]
                if record_type not in RECORD_TYPES:
                    return _error(404, f"unknown record type {record_type!r}")
                at = query.get("at")
                when = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None
                return _json(200, {"data": list(self.truth.current(record_type, when).values())})
        except (KeyError, ValueError) as exc:
            return _error(400, f"bad admin request: {exc}")
        return _error(404, f"Not Found: {path}")

    def serve(self, host: str = "127.0.0.1", port: int = 0):
        """Serve over HTTP in a background thread; use as a context manager."""
        from clever_elt.simulator.server import Server

        return Server(self, host, port)
