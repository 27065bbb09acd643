"""Errors the Clever client raises once retrying cannot help; messages never contain the token."""

from __future__ import annotations


class CleverError(Exception):
    """A Clever API request failed for good (after retries, or at once for a client error)."""


class CleverAuthError(CleverError):
    """Clever refused the token (401/403)."""


class CleverNotFoundError(CleverError):
    """Clever answered 404: the id or endpoint does not exist (or, for an event, was purged)."""


class CleverUnknownHostError(CleverError):
    """The API's host name does not exist (DNS says so, not "try again"): a wrong base URL."""
