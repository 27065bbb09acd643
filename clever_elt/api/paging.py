"""Working ahead on paged endpoints: a thread downloads page after page by `next` link, at most
`depth` bodies ahead (bounded memory), and decoding is submitted a few pages ahead, in order.

Only threads and queues here; fetching, retrying and reading the link are the client's.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass

# fetch(url) -> (url fetched, body, next link as sent, next URL to fetch or None)
Fetch = Callable[[str], tuple[str, bytes, str | None, str | None]]


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()
_PUT_POLL_S = 0.1


class Prefetcher:
    """Iterates `(url, body, next_uri)` in page order; a fetch error is raised in the caller."""

    def __init__(self, fetch: Fetch, first_url: str, depth: int):
        self._fetch = fetch
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(first_url,), name="clever-prefetch", daemon=True
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

    def __iter__(self) -> Iterator[tuple[str, bytes, str | None]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def _run(self, url: str | None) -> None:
        try:
            while url is not None and not self._stop.is_set():
                fetched, body, next_uri, url = self._fetch(url)
                self._put((fetched, body, next_uri))
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
    bodies: Iterable[tuple[str, bytes, str | None]],
    submit: Callable[[bytes], Future],
    depth: int,
) -> Iterator[tuple[str, str | None, Future]]:
    """`(url, next_uri, future)` in page order, with up to `depth` bodies submitted ahead."""
    pending: deque[tuple[str, str | None, Future]] = deque()
    for url, body, next_uri in bodies:
        pending.append((url, next_uri, submit(body)))
        if len(pending) >= depth:
            yield pending.popleft()
    while pending:
        yield pending.popleft()
