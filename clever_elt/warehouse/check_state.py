"""Runs a model's checks after its build, reading no more than the build changed.

What a check found is kept in `_runner.check_outcomes` with the state its table was in (the
runner's state token, see `ModelResult`). After the next build:
- a table the build left as it was (an incremental build with no changed id) keeps the outcome;
- a check in `NARROWABLE` whose last outcome passed, on the very table the build started from,
  reads only the ids the build changed: a problem it looks for lies within one id's rows, and
  the other ids' rows are those it passed on;
- otherwise the check reads every row.

A check whose code changed (its module's text, its name and arguments make its digest) reads every
row again. A run killed between a build and its checks leaves the stored state behind the
table's, so the next run reads every row.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path

import duckdb
import orjson

from clever_elt.warehouse import checks
from clever_elt.warehouse.checks import NARROWABLE, Check, CheckOutcome
from clever_elt.warehouse.runner import CHANGED_IDS, ModelResult
from clever_elt.warehouse.transaction import transaction

_DDL = """
create schema if not exists _runner;
create table if not exists _runner.check_outcomes (
    model varchar,
    check_name varchar,
    table_state varchar,
    check_digest varchar,
    outcome json,
    primary key (model, check_name)
)
"""

UNCHANGED = "unchanged since the last run: its outcome then"
CHANGED_IDS_ONLY = "the ids this build changed (every other row passed before)"


class CheckLedger:
    """The checks of the models one connection builds: evaluated model by model, each right
    after its build, and their outcomes saved together by `save` (one commit)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        con.execute(_DDL)
        self._stored = {
            (model, name): (state, digest, outcome)
            for model, name, state, digest, outcome in con.execute(
                "select model, check_name, table_state, check_digest, outcome "
                "from _runner.check_outcomes"
            ).fetchall()
        }
        self._new: list[list[str | None]] = []

    def evaluate(
        self, model_name: str, model_checks: dict[str, Check], result: ModelResult
    ) -> dict[str, CheckOutcome]:
        """The outcomes of these checks of a model (by name), right after `result`'s build."""
        return {
            name: self._evaluate(model_name, name, check, result)
            for name, check in model_checks.items()
        }

    def _evaluate(
        self, model_name: str, name: str, check: Check, result: ModelResult
    ) -> CheckOutcome:
        if result.state_after is None:  # a model without saved state: nothing to go by
            return check(self.con)
        digest = _digest(name, check)
        state, stored_digest, stored = self._stored.get((model_name, name), (None, None, None))
        last = None
        if (state, stored_digest) == (result.state_before, digest):
            last = CheckOutcome(**orjson.loads(stored))
        if last is not None and result.changed_ids == 0:
            outcome = dataclasses.replace(last, scope=UNCHANGED)
        elif last is not None and last.passed and result.changed_ids and name in NARROWABLE:
            outcome = dataclasses.replace(check(self.con, ids=CHANGED_IDS), scope=CHANGED_IDS_ONLY)
        else:
            outcome = check(self.con)
        self._new.append([model_name, name, result.state_after, digest, _json(outcome)])
        return outcome

    def save(self) -> None:
        if not self._new:
            return
        with transaction(self.con):
            self.con.executemany(
                "insert or replace into _runner.check_outcomes values ($1, $2, $3, $4, $5)",
                self._new,
            )
        self._new = []


def _json(outcome: CheckOutcome) -> str:
    """The outcome as stored (what it found, not how this run came by it)."""
    found = {k: v for k, v in dataclasses.asdict(outcome).items() if k != "scope"}
    return orjson.dumps(found).decode()


def _digest(check_name: str, check: Check) -> str:
    partial = isinstance(check, functools.partial)
    function = check.func if partial else check
    arguments = sorted(check.keywords.items()) if partial else []
    identity = f"{check_name} {function.__module__}.{function.__qualname__} {arguments!r}"
    return hashlib.sha256(_checks_source() + identity.encode()).hexdigest()


@functools.cache
def _checks_source() -> bytes:
    return Path(checks.__file__).read_bytes()
