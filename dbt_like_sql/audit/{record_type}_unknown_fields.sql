-- kind: table
-- grain: id, source, path
-- incremental: append
-- description: One row per key the spec does not list, by {record_type} record, event or
-- baseline, and path (id, source, path), with its occurrences (one per array item). The value
-- stays in raw.events.object or raw.snapshots.object.
with events as (
    select * from staging.{record_type}_events
),

snapshots as (
    select * from staging.{record_type}_snapshots
),

objects as (
    select
        id,
        event_id as source,
        object
    from events
    union all
    select
        id,
        'baseline ' || taken as source,
        object
    from snapshots
),

parts as (
    select
        id,
        source,
        clever_parts_{record_type}(object) as parts
    from objects
),

found as (
    select
        id,
        source,
        unnest(clever_unknown_fields_{record_type}(parts)) as path
    from parts
),

final as (
    select
        id,
        source,
        path,
        count(*) as occurrences
    from found
    group by id, source, path
)

select * from final
