-- kind: scd2
-- unique_key: id
-- order_by: _seq
-- grain: id, _version
-- description: One row per version of a {record_type} record (id, _version): the record's spec
-- fields typed from the spec, valid_from (NULL when the start is unknown) and valid_to (NULL
-- while open), is_deleted for tombstones, the event behind it and how it was learned (_change),
-- and the values that do not fit their spec type (_unfit_values: NULL in their typed column).
with versions as (
    select
        *,
        -- The state the version holds, keyed as staging.{record_type}_states keys it.
        case state_kind
            when 'object' then state_event_id
            when 'prior' then state_event_id || '<'
            when 'snapshot' then 'baseline ' || district || ' ' || state_taken
        end as state_key
    from staging.{record_type}_versions
),

states as (
    select * from staging.{record_type}_states
),

final as (
    select
        versions.id,
        unnest(states.record),
        versions.valid_from,
        versions.is_deleted,
        versions._seq,
        versions._event_id,
        versions._change,
        versions._missed_before,
        states._unfit_values
    from versions
    left join states using (id, state_key)
)

select * from final
