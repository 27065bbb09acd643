"""Working ahead on paged endpoints: a thread downloads page after page by `next` link, through
several streams back to back, at most `depth` bodies ahead (bounded memory); decoding is
submitted a few pages ahead and handed back in order.

Only threads and queues here; fetching, retrying and reading the link are the client's.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

# fetch(url) -> (url fetched, body, next link as sent, next URL to fetch or None)
Fetch = Callable[[str], tuple[str, bytes, str | None, str | None]]


@dataclass(frozen=True)
class Fetched:
    stream: int  # index of the stream (endpoint) the page belongs to
    url: str
    body: bytes
    next_uri: str | None


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()
_PUT_POLL_S = 0.1


class Prefetcher:
    """Iterates `Fetched` pages, stream after stream, each in page order; a fetch error is
    raised in the caller's thread. `starts` is `(stream index, first URL)` per stream."""

    def __init__(self, fetch: Fetch, starts: Sequence[tuple[int, str]], depth: int):
        self._fetch = fetch
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(list(starts),), name="clever-prefetch", daemon=True
        )

    def __enter__(self) -> Prefetcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(_PUT_POLL_S)
        self._drain()

    def __iter__(self) -> Iterator[Fetched]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def _run(self, starts: list[tuple[int, str]]) -> None:
        try:
            for stream, url in starts:
                next_url: str | None = url
                while next_url is not None and not self._stop.is_set():
                    fetched, body, next_uri, next_url = self._fetch(next_url)
                    self._put(Fetched(stream, fetched, body, next_uri))
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self._put(_Failed(exc))
            return
        self._put(_END)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_PUT_POLL_S)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


def submitted_ahead(
    pages: Iterable[Fetched], submit: Callable[[bytes], Future], depth: int
) -> Iterator[tuple[Fetched, Future]]:
    """`(page, future of its decoding)` in page order, with up to `depth` pages submitted ahead."""
    pending: deque[tuple[Fetched, Future]] = deque()
    for page in pages:
        pending.append((page, submit(page.body)))
        if len(pending) >= depth:
            yield pending.popleft()
    while pending:
        yield pending.popleft()
