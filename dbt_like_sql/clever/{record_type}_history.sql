-- kind: scd2
-- unique_key: id
-- order_by: _seq
-- grain: id, _version
-- description: One row per version of a {record_type} record (id, _version): the record's spec
-- fields typed from the spec, valid_from (NULL when the start is unknown) and valid_to (NULL
-- while open), is_deleted for tombstones, the event behind it and how it was learned (_change),
-- and the values that do not fit their spec type (_unfit_values: NULL in their typed column).
with versions as (
    select * from staging.{record_type}_versions
),

events as (
    select * from staging.{record_type}_events
),

snapshots as (
    select * from staging.{record_type}_snapshots
),

states as (
    select
        versions.*,
        case versions.state_kind
            when 'object' then events.object
            when 'prior' then clever_prior_state(events.object, events.previous_attributes)
            when 'snapshot' then snapshots.object
        end as state
    from versions
    left join events on events.event_id = versions.state_event_id
    left join snapshots
        on
            snapshots.district = versions.district
            and snapshots.taken = versions.state_taken
            and snapshots.id = versions.id
),

parsed as (
    select
        *,
        clever_parse_{record_type}(state) as parsed
    from states
),

-- The fast parse can mistype a value that does not fit the spec; those rows are typed exactly.
typed as (
    select
        *,
        clever_suspect_{record_type}(parsed) as suspect,
        case when suspect then clever_exact_{record_type}(state) else parsed end as record
    from parsed
),

-- Values present in the JSON state but NULL once typed, counted by path (array items apart).
checked as (
    select
        *,
        clever_unfit_{record_type}(
            state, clever_text_{record_type}(state), record, suspect
        ) as _unfit_values
    from typed
),

final as (
    select
        id,
        unnest(record),
        valid_from,
        is_deleted,
        _seq,
        _event_id,
        _change,
        _missed_before,
        _unfit_values
    from checked
)

select * from final
