"""The Clever list-page envelope, shared by api/ (paging) and lake/ (decoding) so neither imports
the other: where the next link is, and the error for a body that is not a complete page.

Knows neither HTTP nor storage. A list page is `{"data": [...], "links": [{"rel", "uri"}, ...]}`.
"""

from __future__ import annotations

import re

import orjson


class PageDecodeError(ValueError):
    """A response body that is not a complete Clever list page (e.g. cut off mid-JSON).

    Retried by the client like a 5xx: a gateway can cut a large page short.
    """


# Clever writes `data` first and `links` last, so a page's links sit in its last few hundred bytes.
_DATA_FIRST = re.compile(rb"\s*\{\s*\"data\"\s*:\s*\[")
_EMPTY_DATA = re.compile(rb"\s*\{\s*\"data\"\s*:\s*\[\s*\]")
_LINKS_KEY = b'"links"'
_TAIL_WINDOW = 8192
_WHITESPACE = b" \t\r\n"
# Clever's compact layout: `{"data":[{"data":…,"uri":"…"},…],"links":[…]}`, no whitespace.
_COMPACT_ITEMS_START = b'{"data":[{"data":'
_COMPACT_ITEMS_END = b'"}],'


def next_page_uri(body: bytes) -> str | None:
    """The `next` link of a list page, or None when the page ends the stream (no `next`, no data).

    Reads only the tail of a page in Clever's usual layout; any other layout is parsed whole.
    Raises PageDecodeError when the body is not a list page.
    """
    tail = _tail_links(body)
    if tail is not None:
        if _EMPTY_DATA.match(body):
            return None
        _, links = tail
    else:
        try:
            page = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PageDecodeError(f"response is not complete JSON: {exc}") from exc
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise PageDecodeError("response is not a list page (no `data` array)")
        links = page.get("links") or []
        if not page["data"]:
            return None
    if not isinstance(links, list):
        raise PageDecodeError("response `links` is not an array")
    nexts = [link for link in links if isinstance(link, dict) and link.get("rel") == "next"]
    uri = nexts[0].get("uri") if nexts else None
    return uri if isinstance(uri, str) else None


def compact_items_span(body: bytes) -> tuple[int, int] | None:
    """`(start, end)` such that `body[start:end]` runs from the first item's `data` value to the
    closing quote of the last item's `uri` value, when the page is in Clever's compact layout
    and has at least one item; None for any other page.

    Only the envelope is checked (its start, and the `links` array at its end); the items between
    are not parsed.
    """
    if not body.startswith(_COMPACT_ITEMS_START):
        return None
    tail = _tail_links(body)
    if tail is None:
        return None
    start, end = len(_COMPACT_ITEMS_START), tail[0] - len(_COMPACT_ITEMS_END)
    if end <= start or body[end : tail[0]] != _COMPACT_ITEMS_END:
        return None
    return start, end + 1


def _tail_links(body: bytes) -> tuple[int, list] | None:
    """(where the `"links"` key starts, the top-level `links` array) when the body ends
    `, "links": [...] }` after a leading `data`.

    In valid JSON, an array followed only by the closing brace is the root object's last value,
    so this cannot pick up a nested `links`. A body cut short can still look right here; the
    full decode that follows catches it.
    """
    if not _DATA_FIRST.match(body):
        return None
    start = body.rfind(_LINKS_KEY, max(0, len(body) - _TAIL_WINDOW))
    if start < 0 or _previous_byte(body, start) != ord(","):
        return None
    rest = body[start + len(_LINKS_KEY) :].strip(_WHITESPACE)
    if not rest.startswith(b":") or not rest.endswith(b"}"):
        return None
    try:
        links = orjson.loads(rest[1:-1])
    except orjson.JSONDecodeError:
        return None
    return (start, links) if isinstance(links, list) else None


def _previous_byte(body: bytes, index: int) -> int | None:
    while index > 0:
        index -= 1
        if body[index] not in _WHITESPACE:
            return body[index]
    return None
