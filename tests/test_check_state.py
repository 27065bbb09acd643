"""Checks read no more than a build changed, and never less than they must (a real DuckDB file)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import duckdb
import pytest

from clever_elt.warehouse.check_state import CHANGED_IDS_ONLY, UNCHANGED, CheckLedger
from clever_elt.warehouse.checks import grain_unique
from clever_elt.warehouse.runner import CHANGED_IDS, ModelResult

MODEL = "clever.things"
UNIQUE = partial(grain_unique, relation=("clever", "things"), grain=("id", "version"))


@pytest.fixture
def con(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("create schema clever")
        con.execute(
            "create table clever.things as "
            "select 'id' || (i % 100) as id, i // 100 as version from range(1000) as t(i)"
        )
        yield con


def _built(con, before: str | None, after: str, changed: list[str] | None) -> ModelResult:
    """What the runner reports after a build that changed the rows of `changed` (None: every
    row), leaving those ids in the temp table the checks read."""
    con.execute(
        f"create or replace temp table {CHANGED_IDS} as select unnest($ids::varchar[]) as id",
        {"ids": changed or []},
    )
    return ModelResult(
        rows=0,
        duration_s=0.0,
        sql_path=Path("things.sql"),
        changed_ids=None if changed is None else len(changed),
        state_before=before,
        state_after=after,
    )


def _check(con, result: ModelResult, check=UNIQUE):
    ledger = CheckLedger(con)
    outcome = ledger.evaluate(MODEL, {"grain_unique": check}, result)["grain_unique"]
    ledger.save()
    return outcome


def _duplicate(con, id_: str) -> None:
    con.execute("insert into clever.things values ($1, 0)", [id_])


def test_a_first_build_reads_every_row(con):
    _duplicate(con, "id7")
    outcome = _check(con, _built(con, None, "s1", None))
    assert (outcome.passed, outcome.count, outcome.scope) == (False, 1, "every row")


def test_a_table_left_as_it_was_keeps_its_last_outcome(con):
    assert _check(con, _built(con, None, "s1", None)).passed
    again = _check(con, _built(con, "s1", "s2", []))
    assert (again.passed, again.scope) == (True, UNCHANGED)
    # The ledger trusts the runner: no row is read (a row slipped in behind its back is not seen).
    _duplicate(con, "id7")
    assert _check(con, _built(con, "s2", "s3", [])).scope == UNCHANGED


def test_after_a_pass_only_the_changed_ids_are_read_and_their_problems_found(con):
    assert _check(con, _built(con, None, "s1", None)).passed
    _duplicate(con, "id3")
    narrowed = _check(con, _built(con, "s1", "s2", ["id3", "id4"]))
    assert (narrowed.passed, narrowed.count, narrowed.scope) == (False, 1, CHANGED_IDS_ONLY)
    assert narrowed.examples == [{"id": "id3", "version": 0, "copies": 2}]


def test_after_a_failure_every_row_is_read_again(con):
    _duplicate(con, "id7")
    assert not _check(con, _built(con, None, "s1", None)).passed
    outcome = _check(con, _built(con, "s1", "s2", ["id3"]))
    assert (outcome.count, outcome.scope) == (1, "every row")


def test_a_build_whose_checks_did_not_run_makes_the_next_read_every_row(con):
    assert _check(con, _built(con, None, "s1", None)).passed
    # Built to s2 (its rows of id7 changed), killed before its checks ran; then built to s3.
    _duplicate(con, "id7")
    outcome = _check(con, _built(con, "s2", "s3", ["id3"]))
    assert (outcome.count, outcome.scope) == (1, "every row")


def test_a_check_whose_definition_changed_reads_every_row(con):
    assert _check(con, _built(con, None, "s1", None)).passed
    by_id = partial(grain_unique, relation=("clever", "things"), grain=("id",))
    outcome = _check(con, _built(con, "s1", "s2", []), check=by_id)
    assert (outcome.passed, outcome.count, outcome.scope) == (False, 100, "every row")


def test_a_model_without_saved_state_is_checked_in_full_and_nothing_is_kept(con):
    result = ModelResult(rows=0, duration_s=0.0, sql_path=Path("v.sql"))
    assert _check(con, result).scope == "every row"
    assert con.execute("select count(*) from _runner.check_outcomes").fetchall() == [(0,)]
