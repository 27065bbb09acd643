-- kind: table
-- grain: id, _version, path
-- description: One row per value of a {record_type} version that does not fit its spec type (id,
-- _version, path): NULL in the typed history column, kept in the JSON of the event _event_id (or
-- of the baseline, for a baseline version).
with history as (
    select * from clever.{record_type}_history
),

unfit as (
    select
        id,
        _version,
        _event_id,
        _change,
        unnest(_unfit_values) as failure
    from history
    where len(_unfit_values) > 0
),

final as (
    select
        id,
        _version,
        failure.path,
        failure.values,
        _event_id,
        _change
    from unfit
)

select * from final
