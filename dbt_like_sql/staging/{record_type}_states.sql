-- kind: table
-- grain: id, state_key
-- incremental: append
-- description: Every state a {record_type} version can hold (id, state_key), typed from the spec
-- once: each event's object (state_key: its event id), the state before an update that a version
-- rebuilds (the event id and '<'), and each baseline record ('baseline', district and taken), with
-- the values that do not fit their spec type (_unfit_values: NULL in the typed record).
with events as not materialized (
    select * from staging.{record_type}_events
),

snapshots as (
    select * from staging.{record_type}_snapshots
),

rebuilt as (
    select distinct state_event_id as event_id
    from staging.{record_type}_versions
    where state_kind = 'prior'
),

states as (
    select
        id,
        event_id as state_key,
        object as state
    from events
    union all
    -- Joined back to the rebuilt ids: DuckDB then hashes these few events and types them in whole
    -- chunks, not in the few dozen rows at a time a filter on all events passes on (~5% of the
    -- CPU of this model for users).
    select
        id,
        event_id || '<' as state_key,
        clever_prior_state(object, previous_attributes) as state
    from rebuilt
    inner join (
        select event_id, id, object, previous_attributes
        from events
        where event_id in (select event_id from rebuilt)
    ) using (event_id)
    union all
    select
        id,
        'baseline ' || district || ' ' || taken as state_key,
        object as state
    from snapshots
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
final as (
    select
        id,
        state_key,
        record,
        clever_unfit_{record_type}(
            state, clever_text_{record_type}(state), record, suspect
        ) as _unfit_values
    from typed
)

select * from final
