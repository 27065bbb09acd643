-- kind: table
-- grain: district, taken, id
-- description: One row per {record_type} record on which a baseline and the events disagree at the
-- baseline's anchor (district, taken, id): the fields that differ, or which side lacks it. Events
-- across a gap are no evidence: a resync's start with its first retained event, a baseline's end
-- where a later resync's start.
with manifests as (
    select
        district,
        taken,
        reason,
        coalesce(anchor_event_id, '000000000000000000000000') as anchor_event_id,
        case when reason = 'resync' then first_retained_event_id end as evidence_from
    from raw.baselines
),

baselines as (
    select
        manifests.*,
        (
            select min(later.evidence_from)
            from manifests as later
            where later.district = manifests.district and later.taken > manifests.taken
        ) as evidence_until
    from manifests
),

snapshots as not materialized (
    select * from staging.{record_type}_snapshots
),

events as not materialized (
    select * from staging.{record_type}_events
),

objects as (
    select distinct district, id from events
    union
    select distinct district, id from snapshots
),

pairs as (
    select
        objects.district,
        objects.id,
        baselines.taken,
        baselines.reason,
        baselines.anchor_event_id,
        baselines.evidence_from,
        baselines.evidence_until
    from objects
    inner join baselines using (district)
),

with_last as (
    select
        pairs.*,
        last_event.event_id as last_event_id,
        last_event.action as last_action
    from pairs
    asof left join events as last_event
        on
            last_event.district = pairs.district
            and last_event.id = pairs.id
            and last_event.event_id <= pairs.anchor_event_id
),

with_next as (
    select
        with_last.*,
        next_event.event_id as next_event_id,
        next_event.action as next_action
    from with_last
    asof left join events as next_event
        on
            next_event.district = with_last.district
            and next_event.id = with_last.id
            and next_event.event_id > with_last.anchor_event_id
),

-- What the events say at the anchor: the state after the last event before it, or else the
-- state just before the first event after it.
claims as (
    select
        with_next.*,
        case
            when last_event_id >= coalesce(evidence_from, '') then 'last'
            when next_event_id < coalesce(evidence_until, 'g') then 'next'
        end as evidence,
        case
            when evidence = 'last' then last_action <> 'deleted'
            when evidence = 'next' then next_action <> 'created'
        end as live_per_events,
        case when evidence = 'last' then last_event_id else next_event_id end as evidence_event_id,
        evidence = 'next' and next_action = 'updated' as events_state_rebuilt,
        snapshots.id is not null as in_baseline
    from with_next
    left join snapshots using (district, taken, id)
),

-- Patching both states with the update's previous_attributes makes them comparable as JSON.
compared as (
    select
        claims.*,
        evidence_event.object as events_object,
        evidence_event.previous_attributes,
        snapshots.object as baseline_object,
        case
            when claims.events_state_rebuilt then evidence_event.previous_attributes else '{}'
        end::json as patch
    from claims
    inner join events as evidence_event on evidence_event.event_id = claims.evidence_event_id
    inner join snapshots
        on
            snapshots.district = claims.district
            and snapshots.taken = claims.taken
            and snapshots.id = claims.id
    where claims.live_per_events
),

mismatches as materialized (
    select
        district,
        taken,
        reason,
        id,
        evidence_event_id,
        events_state_rebuilt,
        clever_parse_{record_type}(baseline_object) as baseline_record,
        clever_parse_{record_type}(
            case
                when events_state_rebuilt
                    then clever_prior_state(events_object, previous_attributes)
                else events_object
            end
        ) as events_record
    from compared
    where
        hash(json_merge_patch(baseline_object, patch, '{"last_modified": null}')::varchar)
        <> hash(json_merge_patch(events_object, patch, '{"last_modified": null}')::varchar)
),

-- The typed comparisons are columns of their own and the filters below test only those columns:
-- DuckDB pushes a filter down whole, and one holding the comparisons cost `users` 0.8 s instead
-- of 0.14 s even for a batch of no rows.
judged as materialized (
    select
        *,
        clever_differing_{record_type}(baseline_record, events_record) as fields,
        -- A rebuilt state may hold keys its update added: only the baseline's values must match.
        events_state_rebuilt
        and clever_agrees_{record_type}(events_record, baseline_record) as holds_baseline
    from mismatches
),

field_differences as (
    select
        district,
        taken,
        reason,
        id,
        evidence_event_id,
        'fields differ' as disagreement,
        fields
    from judged
    where not holds_baseline
),

presence_differences as (
    select
        district,
        taken,
        reason,
        id,
        evidence_event_id,
        case
            when live_per_events then 'missing from baseline'
            else 'absent per events'
        end as disagreement,
        []::varchar[] as fields
    from claims
    where live_per_events <> in_baseline
),

final as (
    select * from field_differences
    where len(fields) > 0
    union all
    select * from presence_differences
)

select * from final
