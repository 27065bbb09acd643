-- kind: table
-- grain: id, _seq, path
-- description: One row per value of a {record_type} version that does not fit its spec type (id,
-- _seq, path): NULL in the typed history column, kept in the version's JSON state shown here.
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
        versions.id,
        versions._seq,
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

typed as (
    select
        id,
        _seq,
        state,
        clever_suspect_{record_type}(parsed) as suspect,
        case
            when clever_suspect_{record_type}(parsed) then clever_exact_{record_type}(state)
            else parsed
        end as record,
        clever_text_{record_type}(state) as raw_text
    from parsed
),

unfit as (
    select
        id,
        _seq,
        state,
        unnest(clever_unfit_{record_type}(state, raw_text, record, suspect)) as failure
    from typed
),

final as (
    select
        id,
        _seq,
        failure.path,
        failure.values,
        state
    from unfit
)

select * from final
