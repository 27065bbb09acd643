-- kind: table
-- grain: event_id
-- description: One row per event history can use (the lake flagged no problem with it), with the
-- fingerprints of the state after it and, for an update, of the state before it.
with source as (
    select * from raw.events
),

usable as (
    select *
    from source
    where problem is null
),

final as (
    select
        district,
        record_type,
        object_id as id,
        event_id,
        action,
        created as event_at,
        clever_fingerprint(record_type, object) as fingerprint,
        case
            when action = 'updated' and json_type(previous_attributes) = 'OBJECT'
                then clever_fingerprint(
                    record_type, json_merge_patch(object, previous_attributes)
                )
            when action = 'updated' then clever_fingerprint(record_type, object)
        end as prior_fingerprint
    from usable
)

select * from final
