"""HTTP access to the Clever API: session, bearer auth, retries, page-size fallback and paging.

Knows HTTP and Clever only. Page bodies go to a decoder the caller injects, so nothing here knows
Parquet, DuckDB or Dagster; the token never appears in a message or a repr.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import orjson
import requests
import urllib3

from clever_elt.api.errors import (
    CleverAuthError,
    CleverError,
    CleverNotFoundError,
    CleverUnknownHostError,
)
from clever_elt.api.paging import Prefetcher, submitted_ahead
from clever_elt.envelope import PageDecodeError, next_page_uri
from clever_elt.settings import check_base_url

log = logging.getLogger(__name__)

T = TypeVar("T")

# Clever's largest page; a larger `limit` is answered 413 (and the client halves it).
MAX_PAGE_SIZE = 10_000
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
# Large pages time out at Clever's gateway; a second 502/504 in a row means "ask for less".
_GATEWAY_STATUSES = frozenset({502, 504})
_MAX_RATE_LIMIT_WAIT_S = 120.0
_TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError)


class CleverClient:
    """One district token against one Clever API base URL (`https://api.clever.com/v3.1`).

    `sleep` is injectable so tests exercise backoff and rate-limit waits without waiting.
    List pages download ahead and decode on worker threads while the caller handles the last one.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        page_size: int = MAX_PAGE_SIZE,
        timeout: tuple[float, float] = (5, 60),
        *,
        max_attempts: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        prefetch: int = 2,
        decode_workers: int = 2,
    ):
        if not token:
            raise CleverAuthError("no Clever API token was given (set CLEVER_API_TOKEN)")
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.base_url = check_base_url(base_url)
        self.page_size = page_size
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.prefetch = prefetch
        self.decode_workers = decode_workers
        self._sleep = sleep
        self._random = random.Random()
        self._token = token
        self._origin = urlsplit(self.base_url)[:2]
        # One session per thread: the prefetch thread and the caller each keep their connection.
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._server_time: float | None = None

    def __repr__(self) -> str:
        return f"CleverClient({self.base_url!r}, page_size={self.page_size})"

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def __enter__(self) -> CleverClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Clever calls the sync procedure needs.

    @property
    def server_now(self) -> datetime | None:
        """The API's own clock (its last `Date` header): what retention is measured against."""
        return datetime.fromtimestamp(self._server_time, UTC) if self._server_time else None

    def district_id(self) -> str:
        """The district this token belongs to (a district token sees exactly one)."""
        ids = [item.get("data", {}).get("id") for item in self.get_json("/districts")["data"]]
        if len(ids) != 1 or not ids[0]:
            raise CleverError(
                f"expected a district token that sees exactly one district, it sees {len(ids)}"
            )
        return ids[0]

    def newest_event_id(self) -> str | None:
        return self._first_event_id({"ending_before": "last", "limit": 1})

    def oldest_event_id(self) -> str | None:
        """The oldest event Clever still retains (the first one of the stream)."""
        return self._first_event_id({"limit": 1})

    def event_exists(self, event_id: str) -> bool:
        """Whether Clever still serves this event; False once retention purged it."""
        try:
            self.get_json(f"/events/{event_id}")
        except CleverNotFoundError:
            return False
        return True

    def _first_event_id(self, params: Mapping[str, Any]) -> str | None:
        items = self.get_json("/events", params)["data"]
        return items[0]["data"]["id"] if items else None

    # Generic access.

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a small JSON document (not for list pages that may be large)."""
        return self._fetch(self._url(path, params), paged=False, check=_loads)

    def iter_pages(
        self, path: str, params: Mapping[str, Any] | None, decode: Callable[[bytes], T]
    ) -> Iterator[T]:
        """Every page of one list endpoint in order, each passed through `decode(body)`."""
        for _, page in self.iter_streams([(path, params)], decode):
            yield page

    def iter_streams(
        self,
        streams: Sequence[tuple[str, Mapping[str, Any] | None]],
        decode: Callable[[bytes], T],
    ) -> Iterator[tuple[int, T]]:
        """`(stream index, decoded page)` for every page of several list endpoints, one endpoint
        after the other, each in order.

        Pages download ahead on one thread, also across endpoints, and decode on
        `decode_workers` threads (so `decode` must be thread-safe) while the caller handles the
        page just yielded. `decode` raises PageDecodeError for a body that is not a complete
        page; that page is fetched again. An endpoint ends at a page with no `next` link or no
        data (that page is yielded too).
        """
        firsts = [
            (index, self._url(path, {**(params or {}), "limit": self.page_size}))
            for index, (path, params) in enumerate(streams)
        ]
        starts = firsts
        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="clever-decode") as pool:
            while starts:
                resume: tuple[int, str | None] | None = None
                with Prefetcher(self._fetch_page, starts, self.prefetch) as fetched:
                    # One more page in flight than workers: they decode while the caller
                    # handles the page just yielded.
                    ahead = self.decode_workers + 1
                    submit = partial(pool.submit, decode)
                    for page, future in submitted_ahead(fetched, submit, ahead):
                        try:
                            decoded = future.result()
                        except PageDecodeError:
                            decoded, fresh_next = self._fetch(
                                page.url, paged=True, check=lambda b: (decode(b), next_page_uri(b))
                            )
                            if fresh_next != page.next_uri:
                                # The damaged body still showed a plausible `next`: the prefetch
                                # thread followed the wrong link, so go on from the right one.
                                resume = (page.stream, fresh_next)
                        yield page.stream, decoded
                        if resume is not None:
                            break
                if resume is None:
                    break
                stream, link = resume
                starts = [(stream, self._link(link))] if link else []
                starts += [first for first in firsts if first[0] > stream]

    def _fetch_page(self, url: str) -> tuple[str, bytes, str | None, str | None]:
        body, next_uri = self._fetch(url, paged=True, check=lambda b: (b, next_page_uri(b)))
        return url, body, next_uri, (self._link(next_uri) if next_uri else None)

    # URLs.

    def _url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = urlencode(params or {}, doseq=True)
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def _link(self, uri: str) -> str:
        """A `links` uri (relative, e.g. `/v3.1/events?...`) as a URL on the API's own origin."""
        url = urljoin(self.base_url + "/", uri)
        if urlsplit(url)[:2] != self._origin:
            raise CleverError(f"Clever sent a link to another origin ({uri!r}); refusing to follow")
        return url

    def _sized(self, url: str) -> str:
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "limit"]
        query.append(("limit", str(self.page_size)))
        return urlunsplit(parts._replace(query=urlencode(query)))

    # The request loop.

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(
                {
                    "Authorization": f"Bearer {self._token}",
                    "Accept": "application/json",
                    "User-Agent": "clever-elt",
                }
            )
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _fetch(self, url: str, *, paged: bool, check: Callable[[bytes], T]) -> T:
        """GET until the answer is a 200 whose body `check` accepts; returns `check(body)`.

        Transport errors, 5xx and bodies `check` rejects (PageDecodeError) are retried with
        exponential backoff and jitter; 429 waits for the rate-limit reset; a 413 or a second
        502/504 in a row halves the page size. Other 4xx raise at once.
        """
        gateway_streak = 0
        for attempt in range(1, self.max_attempts + 1):
            if paged:
                url = self._sized(url)
            shown = _shown(url)
            try:
                status, headers, body = self._get(url)
            except _TRANSPORT_ERRORS as exc:
                unknown = _unknown_host(exc)
                if unknown is not None:
                    host = urlsplit(url).hostname
                    raise CleverUnknownHostError(
                        f"the API host {host} does not exist ({unknown.strerror}); check "
                        "CLEVER_API_BASE_URL"
                    ) from exc
                failure, reason, delay = exc, f"{type(exc).__name__}: {exc}", self._backoff(attempt)
            else:
                failure = None
                gateway_streak = gateway_streak + 1 if status in _GATEWAY_STATUSES else 0
                if status == 200:
                    try:
                        return check(body)
                    except PageDecodeError as exc:
                        failure, reason, delay = exc, str(exc), self._backoff(attempt)
                elif status == 429:
                    reason, delay = "rate limited (429)", self._rate_limit_wait(headers)
                elif paged and (status == 413 or gateway_streak >= 2):
                    self._halve_page_size(status, shown)
                    gateway_streak = 0
                    reason, delay = f"HTTP {status}", 0.0
                elif status in _RETRY_STATUSES:
                    reason, delay = f"HTTP {status}", self._backoff(attempt)
                else:
                    raise self._client_error(status, body, shown)
            if attempt == self.max_attempts:
                break
            log.warning(
                "GET %s: %s; retry %d of %d in %.2fs",
                shown,
                reason,
                attempt,
                self.max_attempts - 1,
                delay,
            )
            if delay > 0:
                self._sleep(delay)
        raise CleverError(
            f"GET {shown} failed {self.max_attempts} times; last: {reason}"
        ) from failure

    def _get(self, url: str) -> tuple[int, Mapping[str, str], bytes]:
        # Reading the raw stream in one call is far cheaper than requests' 10 KB chunk loop on
        # 10 MB pages; urllib3 still checks Content-Length and decodes gzip.
        with self._session().get(url, timeout=self.timeout, stream=True) as response:
            body = response.raw.read(decode_content=True)
            self._server_time = _date(response.headers) or self._server_time
            return response.status_code, response.headers, body

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def _rate_limit_wait(self, headers: Mapping[str, str]) -> float:
        """Seconds until the rate-limit window resets: `Retry-After` if sent, else
        `x-ratelimit-reset` against the server's `Date` (one clock on a real server), else
        against the local clock; a wait beyond any rate-limit window means that clock is not
        the reset's, and backoff is used instead."""
        waits = []
        if headers.get("Retry-After"):
            waits.append(_seconds_or_date(headers["Retry-After"], headers))
        reset = _float(headers.get("x-ratelimit-reset"))
        if reset is not None:
            waits += [reset - now for now in (_date(headers), time.time()) if now is not None]
        plausible = [w for w in waits if w is not None and 0 <= w <= _MAX_RATE_LIMIT_WAIT_S]
        if not plausible:
            return self._backoff(1)
        return plausible[0] + self._random.uniform(0, self.backoff_s)

    def _halve_page_size(self, status: int, shown: str) -> None:
        if self.page_size == 1:
            raise CleverError(f"GET {shown} answered HTTP {status} even with a page size of 1")
        self.page_size = max(1, self.page_size // 2)
        log.warning("GET %s: HTTP %s; page size lowered to %d", shown, status, self.page_size)

    def _client_error(self, status: int, body: bytes, shown: str) -> CleverError:
        message = self._redact(_message(body))
        if status in (401, 403):
            return CleverAuthError(
                f"Clever refused the API token (HTTP {status} on GET {shown}): {message}; "
                "check CLEVER_API_TOKEN"
            )
        if status == 404:
            return CleverNotFoundError(f"Clever answered 404 for GET {shown}: {message}")
        return CleverError(f"Clever answered HTTP {status} for GET {shown}: {message}")

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<token>")


def _unknown_host(exc: BaseException) -> socket.gaierror | None:
    """The DNS answer "no such name" somewhere in a transport error's chain (requests wraps
    urllib3's error, which wraps the resolver's), or None. A resolver that cannot answer now
    (EAI_AGAIN) is a transient failure like any other."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, socket.gaierror) and error.errno == socket.EAI_NONAME:
            return error
        pending += [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
    return None


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PageDecodeError(f"response is not complete JSON: {exc}") from exc


def _shown(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _message(body: bytes) -> str:
    try:
        message = orjson.loads(body).get("message")
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    text = message if isinstance(message, str) else body[:200].decode("utf-8", "replace")
    return text.strip() or "(empty response)"


def _date(headers: Mapping[str, str]) -> float | None:
    """The server's time from its `Date` header."""
    try:
        return parsedate_to_datetime(headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _seconds_or_date(value: str, headers: Mapping[str, str]) -> float | None:
    seconds = _float(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    now = _date(headers)
    return when - (now if now is not None else time.time())
