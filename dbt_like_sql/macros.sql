-- Hand-written macros the models share. The runner creates them before any model, followed by
-- the ones derived from the spec for each record type (clever_parse_<rt>, clever_suspect_<rt>,
-- clever_exact_<rt>, clever_fingerprint_<rt>, clever_agrees_<rt>, clever_differing_<rt>).

-- The unix second in an ObjectId's first 4 bytes: an event's time when `created` is unreadable.
create or replace macro clever_id_time(event_id) as
    to_timestamp(('0x' || event_id[1:8])::bigint);

-- RFC 7396 merge where a null in `patch` is a value, not a deletion: nulls ride through
-- json_merge_patch as a marker string. Objects merge recursively, arrays and scalars replace.
create or replace macro clever_deep_merge(target, patch) as
    case
        when json_type(patch) = 'OBJECT' then replace(
            json_merge_patch(
                target,
                regexp_replace(
                    patch::varchar,
                    '("(?:[^"\\]|\\.)*"\s*:\s*)null',
                    '\1"~clever-elt:json-null~"',
                    'g'
                )::json
            )::varchar,
            '"~clever-elt:json-null~"',
            'null'
        )::json
        else coalesce(patch, target)
    end;

-- The state before an update: previous_attributes deep-merged onto the object. last_modified is
-- dropped: previous_attributes never lists it, so its old value is unknown. A patch without the
-- text `null` anywhere (nearly all) needs no null markers: one plain merge does it.
create or replace macro clever_prior_state(object, previous_attributes) as
    case
        when json_type(previous_attributes) is distinct from 'OBJECT'
            then json_merge_patch(object, '{"last_modified": null}')
        when not contains(previous_attributes::varchar, 'null')
            then json_merge_patch(object, previous_attributes, '{"last_modified": null}')
        else json_merge_patch(
            clever_deep_merge(object, previous_attributes), '{"last_modified": null}'
        )
    end;

-- True when JSON object `state` holds every non-null value of `prior` (keys only in `state`
-- aside): free-form objects such as ext, compared key by key at the top.
create or replace macro clever_json_agrees(state, prior) as
    case
        when json_type(prior) = 'OBJECT' then list_has_all(
            map_entries(from_json(state, '"MAP(VARCHAR, JSON)"')),
            list_filter(
                map_entries(from_json(prior, '"MAP(VARCHAR, JSON)"')),
                lambda e: e.value is not null
            )
        )
        else state = prior
    end;
