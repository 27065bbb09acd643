"""The model runner: discovery from dbt_like_sql/ (templates per record type, dependencies parsed
with sqlglot, bad files rejected naming the file), kinds, transactions, kept SQL, spec types."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_history_scenarios import Scenario, course, event
from test_warehouse_support import rows

from clever_elt import spec
from clever_elt.warehouse import ModelError, ModelRunError, Warehouse
from clever_elt.warehouse.load import SOURCES
from clever_elt.warehouse.models import discover


def write_models(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


HEADER = "-- kind: table\n-- grain: id\n-- description: One row per thing (id).\n"


def test_templates_give_every_record_type_its_models_in_dependency_order():
    models = Warehouse("unused.duckdb", "lake", "compiled").models()
    names = [m.name for m in models]
    for record_type in spec.record_types():
        history = names.index(f"clever.{record_type}_history")
        assert names.index(f"staging.{record_type}_versions") < history
        assert names.index(f"staging.{record_type}_states") < history
        assert history < names.index(f"clever.{record_type}_current")
    by_name = {m.name: m for m in models}
    users = by_name["clever.users_history"]
    assert (users.kind, users.record_type, users.grain, users.unique_key) == (
        "scd2",
        "users",
        ("id", "_version"),
        ("id",),
    )
    assert users.deps == (("staging", "users_states"), ("staging", "users_versions"))
    assert by_name["staging.users_states"].deps == (
        ("staging", "users_events"),
        ("staging", "users_snapshots"),
        ("staging", "users_versions"),
    )
    assert by_name["clever.users_current"].deps == (("clever", "users_history"),)
    assert by_name["staging.users_states"].incremental == "append"
    assert by_name["staging.users_versions"].incremental == "by id"
    assert "One row per version of a users record" in users.description
    assert len(models) == 9 * len(spec.record_types())


def test_unknown_reference_fails_when_models_are_loaded_naming_the_file(tmp_path):
    write_models(tmp_path, {"mart/things.sql": HEADER + "select id from staging.nope"})
    with pytest.raises(ModelError, match=r"mart/things.sql: unknown relation staging.nope"):
        discover(tmp_path, SOURCES)


def test_unqualified_reference_fails_naming_the_file(tmp_path):
    write_models(tmp_path, {"mart/things.sql": HEADER + "select id from events"})
    with pytest.raises(ModelError, match=r"mart/things.sql: relation 'events' is not schema"):
        discover(tmp_path, SOURCES)


def test_ddl_or_several_statements_are_rejected(tmp_path):
    write_models(tmp_path, {"mart/things.sql": HEADER + "create table x as select 1 as id"})
    with pytest.raises(ModelError, match="exactly one SELECT"):
        discover(tmp_path, SOURCES)


def test_missing_header_is_rejected(tmp_path):
    write_models(tmp_path, {"mart/things.sql": "-- kind: table\nselect 1 as id"})
    with pytest.raises(ModelError, match="header needs `-- grain"):
        discover(tmp_path, SOURCES)


def test_unknown_incremental_strategy_is_rejected(tmp_path):
    write_models(tmp_path, {"mart/things.sql": HEADER + "-- incremental: merge\nselect 1 as id"})
    with pytest.raises(ModelError, match="incremental 'merge' is not one of by id, append"):
        discover(tmp_path, SOURCES)


def test_dependency_cycle_is_rejected(tmp_path):
    write_models(
        tmp_path,
        {
            "mart/a.sql": HEADER + "select id from mart.b",
            "mart/b.sql": HEADER + "select id from mart.a",
        },
    )
    with pytest.raises(ModelError, match="cycle"):
        discover(tmp_path, SOURCES)


def test_ctes_and_table_functions_are_not_dependencies(tmp_path):
    write_models(
        tmp_path,
        {
            "mart/things.sql": HEADER
            + "with source as (select * from raw.events), numbers as (select * from range(3))\n"
            "select event_id as id from source, numbers"
        },
    )
    [model] = discover(tmp_path, SOURCES)
    assert model.deps == (("raw", "events"),)


def test_failing_model_leaves_the_previous_table_intact_and_keeps_its_sql(tmp_path):
    sql_dir = write_models(
        tmp_path / "sql",
        {"mart/things.sql": HEADER + "select 1 as id", "macros.sql": "select 1;"},
    )
    warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "lake", tmp_path / "compiled", sql_dir)
    [model] = warehouse.models()
    assert warehouse.materialize(model).rows == 1
    (sql_dir / "mart" / "things.sql").write_text(
        HEADER + "select 2 as id union all select error('broken on purpose')"
    )
    broken = Warehouse(tmp_path / "w.duckdb", tmp_path / "lake", tmp_path / "compiled", sql_dir)
    with pytest.raises(ModelRunError, match=r"mart.things failed .*broken on purpose.*things.sql"):
        broken.materialize(broken.models()[0])
    assert rows(warehouse, "select id from mart.things") == [{"id": 1}]
    kept = (tmp_path / "compiled" / "mart" / "things.sql").read_text()
    assert 'create or replace table "mart"."things" as' in kept and "broken on purpose" in kept


def test_view_kind_creates_a_view(tmp_path):
    sql_dir = write_models(
        tmp_path / "sql",
        {
            "mart/things.sql": HEADER.replace("table", "view") + "select 1 as id",
            "macros.sql": "select 1;",
        },
    )
    warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "lake", tmp_path / "compiled", sql_dir)
    warehouse.build()
    assert rows(
        warehouse, "select table_type from information_schema.tables where table_name = 'things'"
    ) == [{"table_type": "VIEW"}]


def test_history_columns_are_typed_from_the_spec(tmp_path):
    scenario = Scenario(tmp_path)
    scenario.events(event(0, "courses.created", course("Math"))).load()
    types = {
        (row["table_name"], row["column_name"]): row["data_type"]
        for row in rows(
            scenario.warehouse,
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'clever'",
        )
    }
    assert types["users_history", "created"] == "TIMESTAMP WITH TIME ZONE"
    assert types["districts_history", "launch_date"] == "DATE"
    assert types["districts_history", "login_methods"] == "VARCHAR[]"
    assert types["schools_history", "ext"] == "JSON"
    assert types["users_history", "lms_status"] == "STRUCT(synced_in_lms BOOLEAN)"
    assert (
        types["users_history", "name"] == 'STRUCT("first" VARCHAR, "last" VARCHAR, middle VARCHAR)'
    )
    roles = types["users_history", "roles"]
    assert roles.startswith("STRUCT(contact STRUCT(legacy_id VARCHAR")
    for role in ("contact", "district_admin", "staff", "student", "teacher"):
        assert f"{role} STRUCT(" in roles
    assert "enrollments STRUCT(end_date TIMESTAMP WITH TIME ZONE" in roles
    assert types["sections_history", "students"] == "VARCHAR[]"
    assert [
        (name, types["courses_history", name])
        for name in (
            "id",
            "district",
            "name",
            "number",
            "valid_from",
            "valid_to",
            "is_current",
            "is_deleted",
            "_event_id",
            "_change",
            "_missed_before",
            "_version",
        )
    ] == [
        ("id", "VARCHAR"),
        ("district", "VARCHAR"),
        ("name", "VARCHAR"),
        ("number", "VARCHAR"),
        ("valid_from", "TIMESTAMP WITH TIME ZONE"),
        ("valid_to", "TIMESTAMP WITH TIME ZONE"),
        ("is_current", "BOOLEAN"),
        ("is_deleted", "BOOLEAN"),
        ("_event_id", "VARCHAR"),
        ("_change", "VARCHAR"),
        ("_missed_before", "BOOLEAN"),
        ("_version", "BIGINT"),
    ]
