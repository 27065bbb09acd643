-- kind: view
-- grain: event_id
-- description: One row per usable {record_type} event (event_id): the lake flagged no problem with
-- it. previous_attributes is an object or NULL.
with source as (
    select * from raw.events
    where record_type = '{record_type}' and problem is null
),

final as (
    select
        event_id,
        district,
        object_id as id,
        action,
        created as event_at,
        object,
        case
            when json_type(previous_attributes) = 'OBJECT' then previous_attributes
        end as previous_attributes,
        _loaded_at
    from source
)

select * from final
