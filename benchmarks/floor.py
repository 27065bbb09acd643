"""The floor: a bare client that downloads every events page (limit=10000) by following `next`
links and does nothing else: no JSON parsing of events, no writes. No pipeline can sync faster.

Run as a child process by compare.py: `python -m benchmarks.floor OUT.json`, with the API given
as for `clever-elt run` (CLEVER_API_BASE_URL, CLEVER_API_TOKEN).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import orjson
import requests

PAGE_SIZE = 10_000
# Each event list item ends with its uri, so counting uris counts events without parsing them.
ITEM_MARK = b'"uri":"/v3.1/events/'
LINKS_MARK = b'"links":'


def next_link(body: bytes) -> str | None:
    """The page's `next` uri, read from the `links` array that closes the body."""
    links = orjson.loads(body[body.rindex(LINKS_MARK) + len(LINKS_MARK) : body.rindex(b"}")])
    return next((link["uri"] for link in links if link["rel"] == "next"), None)


def download_all(base_url: str, token: str) -> dict[str, float | int]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    url: str | None = f"{base_url}/events?limit={PAGE_SIZE}"
    events = pages = size = 0
    started = time.perf_counter()
    while url:
        response = session.get(url, timeout=(5, 120))
        response.raise_for_status()
        body = response.content
        count = body.count(ITEM_MARK)
        if count == 0:
            break
        events += count
        pages += 1
        size += len(body)
        link = next_link(body)
        url = urljoin(base_url, link) if link else None
    return {
        "events": events,
        "pages": pages,
        "bytes": size,
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="where to write the counts as JSON")
    args = parser.parse_args(argv)
    result = download_all(os.environ["CLEVER_API_BASE_URL"], os.environ["CLEVER_API_TOKEN"])
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
