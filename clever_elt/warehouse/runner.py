"""Materializes one model: writes its DDL, runs it in one transaction, keeps the SQL it ran.

Kinds: `view`, `table`, and `scd2`, whose SELECT yields one row per version with `valid_from` and
an ordering column; the kind adds `valid_to` (the next version's `valid_from`), `is_current` and
`_version`. A failing model rolls back and leaves the previous relation as it was. A table or
scd2 model of one record type keyed by `id` is built incrementally once it exists: only the ids
of events loaded since its last build are recomputed (see `Increment`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clever_elt.warehouse import spec_checks, spec_types
from clever_elt.warehouse.models import Key, Model, quote_key
from clever_elt.warehouse.transaction import transaction

log = logging.getLogger(__name__)


class ModelRunError(RuntimeError):
    """A model's SQL failed; the message names the model and the file holding the SQL it ran."""


@dataclass(frozen=True)
class ModelResult:
    """What one build did. A model with saved state (see `Increment`) names the state its table
    was in before and after the build (`state_before`: None if unknown); its rows changed only
    for the ids in the temp table `CHANGED_IDS` when `changed_ids` is a number."""

    rows: int
    duration_s: float
    sql_path: Path
    changed_ids: int | None = None  # None: rebuilt in full
    state_before: str | None = None
    state_after: str | None = None


_STATE_DDL = """
create schema if not exists _runner;
create table if not exists _runner.model_state (
    model varchar primary key,
    sql_hash varchar,
    loaded_until timestamptz,
    baselines varchar
);
create table if not exists _runner.macros (digest varchar)
"""

_IDS = CHANGED_IDS = "_clever_ids"  # the ids to (re)build; after a build, those rebuilt
_CHANGED = "_clever_batch_ids"  # the ids of one batch
_INTERVALS = "_clever_intervals"  # an scd2 model's keys and their intervals
_COPIES = "_clever_copies"  # the view copies on this connection, and the batch each holds
_ROWS = "_clever_rows"  # a batch's rows as computed, before they replace the stored ones
_DIFFERING = "_clever_differing"  # the grains whose computed rows differ from the stored ones
# A per-id model is built in one statement. One that runs out of memory is rolled back and built
# again by id range, in batches of about this many events and baseline records, and if a batch
# still runs out of memory, in batches a quarter the size, this many more times.
BATCH_SOURCE_ROWS = 150_000
SMALLER_BATCH_RETRIES = 3
# An incremental batch of up to this many rows replaces only the stored rows that differ from them.
COMPARED_ROWS = 100_000


@dataclass(frozen=True)
class Increment:
    """What an incremental build of a model may rely on.

    Every row of such a model belongs to one `id`, and depends only on that id's events and
    baseline records (and on the list of baselines, which forces a full build when it changes).
    So the rows of the ids whose events were loaded after `loaded_until` are computed again from
    the model's SQL with each per-id source filtered to those ids, and replace those of their
    stored rows that differ; other rows stand.
    """

    sources: frozenset[Key]  # relations of the same record type with an `id` column
    views: frozenset[Key] = frozenset()  # those of them computed from raw.* on every read
    macros: str = ""  # the macros' text: a change to one (the spec's types...) means a full build


def _watermark(con: duckdb.DuckDBPyConnection) -> tuple[object, str]:
    """How far raw.* has been loaded: the newest load time and the baselines known."""
    loaded_until = con.execute("select max(_loaded_at) from raw.events").fetchall()[0][0]
    baselines = con.execute(
        "select coalesce(string_agg(district || '/' || taken, ',' order by district, taken), '') "
        "from raw.baselines"
    ).fetchall()[0][0]
    return loaded_until, baselines


def macro_statements(macros_file: Path) -> str:
    """The macros every model may use: hand-written ones, then the ones derived from the spec."""
    return _macro_statements(macros_file, macros_file.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _macro_statements(macros_file: Path, _mtime_ns: int) -> str:
    generated = ";\n\n".join(spec_types.macros() + spec_checks.macros())
    return f"{macros_file.read_text(encoding='utf-8').strip()}\n\n{generated};\n"


def create_macros(con: duckdb.DuckDBPyConnection, macros_file: Path, compiled_dir: Path) -> None:
    """Create the macros unless the database already holds these very ones (each asset of a run
    connects anew, and creating them all takes a noticeable fraction of a second)."""
    text = macro_statements(macros_file)
    digest = hashlib.sha256(text.encode()).hexdigest()
    con.execute(_STATE_DDL)
    stored = con.execute("select digest from _runner.macros").fetchall()
    if stored == [(digest,)]:
        return
    _keep(compiled_dir / "macros.sql", text)
    with transaction(con):
        con.execute(text)
        con.execute("delete from _runner.macros")
        con.execute("insert into _runner.macros values ($1)", [digest])


def _keep(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _scd2_statements(
    con: duckdb.DuckDBPyConnection, model: Model, sql: str, into: str
) -> list[str]:
    columns = [row[0] for row in con.execute(f"describe {model.sql}").fetchall()]
    for required in (*model.unique_key, model.order_by, "valid_from"):
        if required not in columns:
            raise ModelRunError(f"{model.name}: scd2 model must select a {required!r} column")
    # Two statements: the window sorts only the keys, into a temp table, and the wide rows then
    # stream through a join on those keys. (A window over the model itself would sort and hold
    # every typed column; one statement would hold the window and the wide rows at once.)
    keys = ", ".join(spec_types.quote(k) for k in (*model.unique_key, model.order_by))
    partition = ", ".join(spec_types.quote(k) for k in model.unique_key)
    order = spec_types.quote(model.order_by)
    select: list[str] = []
    for name in columns:
        if name == model.order_by:
            continue
        select.append(f"model.{spec_types.quote(name)}")
        if name == "valid_from":
            select += ["intervals.valid_to", "intervals.is_current"]
    select.append("intervals._version")
    body = ",\n    ".join(select)
    intervals = (
        f"create or replace temp table {_INTERVALS} as\n"
        f"select\n    {keys},\n"
        f"    lead(valid_from) over versions as valid_to,\n"
        f"    lead(valid_from) over versions is null as is_current,\n"
        f"    row_number() over versions as _version\n"
        f"from (\n{sql}\n) as model\n"
        f"window versions as (partition by {partition} order by {order})"
    )
    rows = (
        f"{into}\nselect\n    {body}\nfrom (\n{sql}\n) as model\n"
        f"inner join {_INTERVALS} as intervals using ({keys})"
    )
    return [intervals, rows]


def _statements(con: duckdb.DuckDBPyConnection, model: Model, sql: str, into: str) -> list[str]:
    """The statements that put the rows of `sql` (the model's SELECT, or a version of it) `into`
    a table (`into` being e.g. `insert into t by name`)."""
    if model.kind == "scd2":
        return _scd2_statements(con, model, sql, into)
    return [f"{into}\n{sql}"]


def compile_model(con: duckdb.DuckDBPyConnection, model: Model) -> list[str]:
    """The statements that materialize a model (DDL around its SELECT)."""
    target = quote_key(model.key)
    if model.kind == "view":
        return [f"create or replace view {target} as\n{model.sql}"]
    return _statements(con, model, model.sql, f"create or replace table {target} as")


def _run(
    con: duckdb.DuckDBPyConnection,
    statements: list[str],
    sql_path: Path,
    header: str | None,
) -> None:
    """Run statements, keeping their text under `sql_path` first (after what is there already
    when `header` is None)."""
    text = ";\n\n".join(statements) + ";\n"
    if header is None:
        with sql_path.open("a", encoding="utf-8") as kept:
            kept.write("\n" + text)
    else:
        _keep(sql_path, f"-- {header}\n" + text)
    for statement in statements:
        con.execute(statement)


def _copy_name(key: Key, rows: str = "changed") -> str:
    """The temp table holding a view's rows for the batch (`rows`: which of them)."""
    return spec_types.quote(f"_clever_{rows}_{key[0]}_{key[1]}")


def _changed_rows(key: Key, low: str, high: str) -> str:
    """A source's rows of the batch's ids, all between `low` and `high` (a range DuckDB can push
    into the scans of raw.*)."""
    return (
        f"select * from {quote_key(key)}\n"
        f"where id between {spec_types.literal(low)} and {spec_types.literal(high)} "
        f"and id in (select id from {_CHANGED})"
    )


def restrict_to_changed(
    model: Model, increment: Increment, low: str, high: str, loaded_after: object = None
) -> tuple[str, dict[str, str]]:
    """The model's SQL with each per-id source it references read for the batch's ids only, and
    the statements that copy the views among them first.

    A view's rows for the batch go into a temp table: the JSON typed from them is typed several
    times faster over those dense rows than over a scan of raw.* that skips most of its rows. A
    table is read through the filter. With `loaded_after` (a model built by "append"), a view is
    read for the rows loaded after that time only: the new events. The text is kept as written;
    only the referenced names are replaced (where sqlglot found them when the model was read).
    """
    spans = []
    copies = {}
    for reference in model.references:
        key = reference.key
        if key not in increment.sources:
            continue
        if key in increment.views:
            text = _copy_name(key)
            rows = _changed_rows(key, low, high)
            if loaded_after is not None:
                text = _copy_name(key, "new")
                rows += f" and _loaded_at > {spec_types.literal(str(loaded_after))}::timestamptz"
            copies[text] = f"create or replace temp table {text} as\n{rows}"
        else:
            text = f"({_changed_rows(key, low, high)})"
        if not reference.aliased:
            text += f" as {key[1]}"
        spans.append((reference.start, reference.end, text))
    sql = model.sql
    for start, end, text in sorted(spans, reverse=True):
        sql = sql[:start] + text + sql[end:]
    return sql, copies


def _copy_statements(
    con: duckdb.DuckDBPyConnection, copies: dict[str, str], batch: str
) -> list[str]:
    """The statements that make a batch's view copies (name -> statement), less the copies an
    earlier model made on this connection for the very same `batch` (its ids and the load they
    were read at): the models of a record type mostly read the same views."""
    con.execute(
        f"create temp table if not exists {_COPIES} (copy varchar primary key, batch varchar)"
    )
    made = {
        name
        for (name,) in con.execute(
            f"select copy from {_COPIES} where batch = $1", [batch]
        ).fetchall()
    }
    statements = []
    for name, statement in copies.items():
        if name not in made:
            statements += [
                statement,
                f"insert or replace into {_COPIES} values "
                f"({spec_types.literal(name)}, {spec_types.literal(batch)})",
            ]
    return statements


def _exists(con: duckdb.DuckDBPyConnection, key: Key) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where schema_name = $1 and table_name = $2",
            [key[0], key[1]],
        ).fetchall()[0][0]
    )


def _state(con: duckdb.DuckDBPyConnection, name: str) -> tuple | None:
    """A model's saved (sql_hash, loaded_until, baselines), or None."""
    rows = con.execute(
        "select sql_hash, loaded_until, baselines from _runner.model_state where model = $1",
        [name],
    ).fetchall()
    return rows[0] if rows else None


def _save_state(
    con: duckdb.DuckDBPyConnection, name: str, sql_hash: str, loaded_until, baselines: str
) -> None:
    con.execute(
        "insert or replace into _runner.model_state values ($1, $2, $3, $4)",
        [name, sql_hash, loaded_until, baselines],
    )


def _token(state: tuple | None) -> str | None:
    """A saved state as one string: equal tokens, equal tables."""
    return None if state is None else " ".join(str(part) for part in state)


def _incremental(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    increment: Increment,
    state: tuple | None,
    sql_hash: str,
    watermark: tuple[object, str],
    sql_path: Path,
    batch_rows: int | None,
) -> int | None:
    """Rebuild only the changed ids' rows (the model's saved `state` says since when); None
    when a full build is needed instead."""
    if state is None:
        return None
    old_hash, loaded_until, baselines = state
    if old_hash != sql_hash or baselines != watermark[1]:
        return None
    # An upstream model of the same kind must already include every load this build sees.
    for dep in model.deps:
        dep_state = _state(con, f"{dep[0]}.{dep[1]}") if dep in increment.sources else None
        if dep_state is not None and dep_state[1:] != watermark:
            return None
    con.execute(
        f"""
        create or replace temp table {_IDS} as
        select distinct object_id as id from raw.events
        where record_type = $record_type and object_id is not null
            and ($since is null or _loaded_at > $since)
        """,
        {"record_type": model.record_type, "since": loaded_until},
    )
    selection = f"ids loaded after {loaded_until}, at load {watermark}"
    loaded_after = loaded_until if model.incremental == "append" else None
    return _build_ids(con, model, increment, sql_path, batch_rows, selection, True, loaded_after)


def _build_ids(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    increment: Increment,
    sql_path: Path,
    batch_rows: int | None,
    selection: str,
    replace: bool,
    loaded_after: object = None,
) -> int:
    """(Re)build the rows of the ids in the temp table `_IDS` (which `selection` describes,
    load included), or with `loaded_after`, only their rows from events loaded after it; returns
    how many ids.

    Ids go in one batch, or by id range in batches of about `batch_rows` events and baseline
    records: a batch's states (joined, parsed, windowed) fit in memory where all of a large
    district's may not.
    """
    batches = 1 if batch_rows is None else max(1, -(-_source_rows(con, model) // batch_rows))
    ranges = con.execute(
        f"""
        select min(id), max(id)
        from (select id, ntile({batches}) over (order by id) as batch from {_IDS})
        group by batch order by 1
        """
    ).fetchall()
    ids = con.execute(f"select count(*) from {_IDS}").fetchall()[0][0]
    target = quote_key(model.key)
    for low, high in ranges:
        con.execute(
            f"create or replace temp table {_CHANGED} as "
            f"select id from {_IDS} where id between $low and $high",
            {"low": low, "high": high},
        )
        sql, copies = restrict_to_changed(model, increment, low, high, loaded_after)
        statements = _copy_statements(con, copies, f"{selection}: {low} to {high}")
        if replace:
            statements += _statements(con, model, sql, f"create or replace temp table {_ROWS} as")
        else:
            statements += _statements(con, model, sql, f"insert into {target} by name")
        header = f"{model.description} ({ids} ids in {len(ranges)} batches; the last one)"
        _run(con, statements, sql_path, header)
        if replace:
            _run(con, _replace_changed_rows(con, model, low, high), sql_path, None)
    return ids


def _replace_changed_rows(
    con: duckdb.DuckDBPyConnection, model: Model, low: str, high: str
) -> list[str]:
    """The statements that make the batch's rows of the model's table those computed into
    `_ROWS`, touching only the rows that differ.

    Rows are compared whole, by grain: a grain whose stored rows differ in any way from the
    computed ones (as multisets) has its rows deleted and inserted again; the others are left
    alone. Most of a changed id's rows (its earlier states, versions...) come out the same, and
    deleting them only to insert them again would cost far more than the comparison: DuckDB
    rewrites (vacuums) a large table's row groups at the next checkpoint once enough of their
    rows are deleted. A batch of more than `COMPARED_ROWS` rows replaces all of its ids' rows
    instead: comparing that many wide rows takes more memory than DuckDB has. A model built by
    "append" computed the rows of the new events only: only the stored rows of the grains it
    computed are compared or replaced, the others stand.
    """
    target = quote_key(model.key)
    appended = model.incremental == "append"
    if con.execute(f"select count(*) from {_ROWS}").fetchall()[0][0] > COMPARED_ROWS:
        keys, source = (model.grain, _ROWS) if appended else (("id",), _CHANGED)
        listed_keys = ", ".join(spec_types.quote(c) for c in keys)
        return [
            f"delete from {target} as stored\n"
            f"using (select distinct {listed_keys} from {source}) as computed\n"
            f"where {_same(keys, 'stored', 'computed')}",
            f"insert into {target} by name select * from {_ROWS}",
        ]
    columns = [
        row[0]
        for row in con.execute(
            "select column_name from duckdb_columns() where schema_name = $1 and table_name = $2 "
            "order by column_index",
            [model.key[0], model.key[1]],
        ).fetchall()
    ]
    listed = ", ".join(spec_types.quote(c) for c in columns)
    grain = ", ".join(spec_types.quote(c) for c in model.grain)
    stored = f"({_changed_rows(model.key, low, high)}) as stored"
    if appended:
        stored += (
            f" semi join (select distinct {grain} from {_ROWS}) as computed\n"
            f"        on {_same(model.grain, 'stored', 'computed')}"
        )
    return [
        f"create or replace temp table {_DIFFERING} as\n"
        f"select distinct {grain} from (\n"
        f"    select {listed} from (\n"
        f"        select {listed}, 1 as _side from {stored}\n"
        f"        union all\n        select {listed}, -1 from {_ROWS}\n"
        f"    ) group by {listed} having sum(_side) <> 0\n"
        f")",
        f"delete from {target} as stored using {_DIFFERING} as differing\n"
        f"where {_same(model.grain, 'stored', 'differing')}",
        f"insert into {target} by name\nselect computed.* from {_ROWS} as computed\n"
        f"semi join {_DIFFERING} as differing on {_same(model.grain, 'computed', 'differing')}",
    ]


def _same(columns: tuple[str, ...], left: str, right: str) -> str:
    """`left` and `right` agree on these columns (NULLs agreeing)."""
    return " and ".join(
        f"{left}.{spec_types.quote(c)} is not distinct from {right}.{spec_types.quote(c)}"
        for c in columns
    )


def _source_rows(con: duckdb.DuckDBPyConnection, model: Model) -> int:
    """The events and baseline records of the ids in `_IDS`."""
    return con.execute(
        f"""
        select (
            select count(*) from raw.events
            where record_type = $record_type and object_id in (select id from {_IDS})
        ) + (
            select count(*) from raw.snapshots
            where record_type = $record_type and object_id in (select id from {_IDS})
        )
        """,
        {"record_type": model.record_type},
    ).fetchall()[0][0]


def _build_all(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    increment: Increment,
    statements: list[str],
    sql_path: Path,
    batch_rows: int | None,
    watermark: tuple[object, str],
) -> None:
    """A full build of a per-id model: its compiled `statements`, or every id of its record type
    batch by batch (of the load `watermark` describes)."""
    if batch_rows is None:
        _run(con, statements, sql_path, model.description)
        return
    empty = f"select * from (\n{model.sql}\n) limit 0"
    target = quote_key(model.key)
    for statement in _statements(con, model, empty, f"create or replace table {target} as"):
        con.execute(statement)
    con.execute(
        f"""
        create or replace temp table {_IDS} as
        select object_id as id from raw.events
        where record_type = $record_type and object_id is not null
        union
        select object_id from raw.snapshots
        where record_type = $record_type and object_id is not null
        """,
        {"record_type": model.record_type},
    )
    selection = f"every id, at load {watermark}"
    _build_ids(con, model, increment, sql_path, batch_rows, selection, replace=False)


def _materialize_once(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    sql_path: Path,
    increment: Increment | None,
    full_refresh: bool,
    batch_rows: int | None,
) -> tuple[int, int | None, str | None, str | None]:
    """One attempt, in one transaction: rolled back whole if it fails. Returns (rows, changed
    ids or None for a full build, state tokens before and after)."""
    with transaction(con):
        con.execute(f"create schema if not exists {spec_types.quote(model.key[0])}")
        statements = compile_model(con, model)
        macros = increment.macros if increment is not None else ""
        sql_hash = hashlib.sha256("\n".join([macros, *statements]).encode()).hexdigest()
        changed = before = after = None
        if increment is not None:
            con.execute(_STATE_DDL)
            watermark = _watermark(con)
            state = _state(con, model.name) if _exists(con, model.key) else None
            before = _token(state)
            if not full_refresh:
                changed = _incremental(
                    con, model, increment, state, sql_hash, watermark, sql_path, batch_rows
                )
        if changed is None and increment is not None:
            _build_all(con, model, increment, statements, sql_path, batch_rows, watermark)
        elif changed is None:
            _run(con, statements, sql_path, model.description)
        if increment is not None:
            _save_state(con, model.name, sql_hash, *watermark)
            after = _token((sql_hash, *watermark))
        rows = con.execute(f"select count(*) from {quote_key(model.key)}").fetchall()[0][0]
    return rows, changed, before, after


def materialize(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    compiled_dir: Path,
    increment: Increment | None = None,
    full_refresh: bool = False,
) -> ModelResult:
    """Build one model; incrementally when `increment` says how and nothing forces a full build."""
    started = time.perf_counter()
    sql_path = compiled_dir / model.key[0] / f"{model.key[1]}.sql"
    batch_rows: int | None = None
    for retries_left in range(SMALLER_BATCH_RETRIES + 1, -1, -1):
        try:
            rows, changed, before, after = _materialize_once(
                con, model, sql_path, increment, full_refresh, batch_rows
            )
            break
        except duckdb.OutOfMemoryException as exc:
            if increment is None or not retries_left:
                raise ModelRunError(
                    f"model {model.name} ran out of memory ({exc}); the SQL it ran: {sql_path}"
                ) from exc
            batch_rows = BATCH_SOURCE_ROWS if batch_rows is None else batch_rows // 4
            log.warning("%s ran out of memory: again in batches of %d", model.name, batch_rows)
        except duckdb.Error as exc:
            raise ModelRunError(
                f"model {model.name} failed ({exc}); the SQL it ran: {sql_path}"
            ) from exc
    result = ModelResult(
        rows=rows,
        duration_s=time.perf_counter() - started,
        sql_path=sql_path,
        changed_ids=changed,
        state_before=before,
        state_after=after,
    )
    log.info(
        "materialized %s (%s, %s): %d rows in %.2fs",
        model.name,
        model.kind,
        "full" if changed is None else f"{changed} changed ids",
        rows,
        result.duration_s,
    )
    return result
