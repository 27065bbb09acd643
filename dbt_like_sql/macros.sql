-- Hand-written macros the models share; the runner creates them, with the spec-derived
-- clever_parse_<rt>, clever_suspect_<rt>, clever_exact_<rt> and clever_fingerprint, before any model.

-- The unix second in an ObjectId's first 4 bytes: an event's time when `created` is unreadable.
create or replace macro clever_id_time(event_id) as
    to_timestamp(('0x' || event_id[1:8])::bigint);

-- The state before an update: previous_attributes deep-merged onto the object (objects merge,
-- arrays and scalars replace). json_merge_patch deletes a key whose patch value is null, but a
-- null in previous_attributes is an old value, so nulls ride through the merge as a marker string.
-- last_modified is dropped: previous_attributes never lists it, so its old value is unknown.
create or replace macro clever_prior_state(object, previous_attributes) as
    case
        when json_type(previous_attributes) = 'OBJECT' then json_merge_patch(
            replace(
                json_merge_patch(
                    object,
                    regexp_replace(
                        previous_attributes::varchar,
                        '("(?:[^"\\]|\\.)*"\s*:\s*)null',
                        '\1"~clever-elt:json-null~"',
                        'g'
                    )::json
                )::varchar,
                '"~clever-elt:json-null~"',
                'null'
            )::json,
            '{"last_modified": null}'
        )
        else json_merge_patch(object, '{"last_modified": null}')
    end;

-- The leaves of a state (scalars and whole arrays, not inside arrays; nulls are absent values).
create or replace macro clever_leaves(state) as table
    select fullkey, value
    from json_tree(state)
    where type not in ('OBJECT', 'NULL') and fullkey not like '%[%' and fullkey <> '$.last_modified';

-- True when `state` holds every value of `prior` (last_modified and keys only in `state` aside):
-- how an update's rebuilt state must relate to the version before it.
create or replace macro clever_agrees(state, prior) as (
    select count(*) = 0
    from (
        select fullkey, value from clever_leaves(prior)
        except
        select fullkey, value from clever_leaves(state)
    )
);

-- The top-level fields where two states differ (null = absent, last_modified ignored), sorted.
create or replace macro clever_differing_fields(a, b) as (
    select coalesce(list(distinct field order by field), [])
    from (
        select regexp_extract(fullkey, '^\$\.("(?:[^"\\]|\\.)*"|[^.\[]+)', 1) as field
        from (
            (select * from clever_leaves(a) except select * from clever_leaves(b))
            union all
            (select * from clever_leaves(b) except select * from clever_leaves(a))
        )
    )
);
