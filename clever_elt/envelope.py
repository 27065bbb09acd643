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


def next_page_uri(body: bytes) -> str | None:
    """The `next` link of a list page, or None when the page ends the stream (no `next`, no data).

    Reads only the tail of a page in Clever's usual layout; any other layout is parsed whole.
    Raises PageDecodeError when the body is not a list page.
    """
    links = _tail_links(body)
    if links is None:
        try:
            page = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PageDecodeError(f"response is not complete JSON: {exc}") from exc
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise PageDecodeError("response is not a list page (no `data` array)")
        links = page.get("links") or []
        if not page["data"]:
            return None
    elif _EMPTY_DATA.match(body):
        return None
    if not isinstance(links, list):
        raise PageDecodeError("response `links` is not an array")
    nexts = [link for link in links if isinstance(link, dict) and link.get("rel") == "next"]
    uri = nexts[0].get("uri") if nexts else None
    return uri if isinstance(uri, str) else None


def _tail_links(body: bytes) -> list | None:
    """The top-level `links` array when the body ends `, "links": [...] }` after a leading `data`.

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
    return links if isinstance(links, list) else None


def _previous_byte(body: bytes, index: int) -> int | None:
    while index > 0:
        index -= 1
        if body[index] not in _WHITESPACE:
            return body[index]
    return None
