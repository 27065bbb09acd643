-- kind: table
-- grain: district, taken, record_type, id
-- description: One row per object on which a baseline and the events disagree at the baseline's
-- anchor (district, taken, record_type, id): the fields that differ, or which side lacks the
-- object. Events across a gap are no evidence: a resync's start with its first retained event, a
-- baseline's end where a later resync's start.
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

snapshots as (
    select
        district,
        taken,
        record_type,
        object_id as id,
        object,
        clever_fingerprint(record_type, object) as fingerprint
    from raw.snapshots
    where problem is null
),

events as (
    select * from staging.events
),

objects as (
    select distinct district, record_type, id from events
    union
    select distinct district, record_type, id from snapshots
),

pairs as (
    select
        objects.district,
        objects.record_type,
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
        last_event.action as last_action,
        last_event.fingerprint as last_fingerprint
    from pairs
    asof left join events as last_event
        on
            last_event.district = pairs.district
            and last_event.record_type = pairs.record_type
            and last_event.id = pairs.id
            and last_event.event_id <= pairs.anchor_event_id
),

with_next as (
    select
        with_last.*,
        next_event.event_id as next_event_id,
        next_event.action as next_action,
        next_event.fingerprint as next_fingerprint,
        next_event.prior_fingerprint as next_prior_fingerprint
    from with_last
    asof left join events as next_event
        on
            next_event.district = with_last.district
            and next_event.record_type = with_last.record_type
            and next_event.id = with_last.id
            and next_event.event_id > with_last.anchor_event_id
),

-- What the events say at the anchor: the state after the last event before it, or else the
-- state just before the first event after it.
event_says as (
    select
        *,
        case
            when last_event_id >= coalesce(evidence_from, '') then 'last'
            when next_event_id < coalesce(evidence_until, 'g') then 'next'
        end as evidence
    from with_next
),

claims as (
    select
        event_says.*,
        case evidence
            when 'last' then last_action <> 'deleted'
            when 'next' then next_action <> 'created'
        end as live_per_events,
        case
            when evidence = 'last' then last_fingerprint
            when next_action = 'updated' then next_prior_fingerprint
            else next_fingerprint
        end as events_fingerprint,
        case when evidence = 'last' then last_event_id else next_event_id end as evidence_event_id,
        evidence = 'next' and next_action = 'updated' as events_state_rebuilt,
        snapshots.id is not null as in_baseline,
        snapshots.fingerprint as baseline_fingerprint
    from event_says
    left join snapshots using (district, taken, record_type, id)
    where evidence is not null
),

field_checks as (
    select
        claims.*,
        snapshots.object as baseline_state,
        case
            when claims.events_state_rebuilt
                then clever_prior_state(evidence.object, evidence.previous_attributes)
            else evidence.object
        end as events_state
    from claims
    left join raw.events as evidence on evidence.event_id = claims.evidence_event_id
    left join snapshots
        on
            snapshots.district = claims.district
            and snapshots.taken = claims.taken
            and snapshots.record_type = claims.record_type
            and snapshots.id = claims.id
    where
        claims.live_per_events
        and claims.in_baseline
        and claims.events_fingerprint is distinct from claims.baseline_fingerprint
),

field_differences as (
    select
        district,
        taken,
        reason,
        record_type,
        id,
        evidence_event_id,
        'fields differ' as disagreement,
        clever_differing_fields(baseline_state, events_state) as fields
    from field_checks
    -- A rebuilt state may hold keys its update added: only the baseline's values must match.
    where not (events_state_rebuilt and clever_agrees(events_state, baseline_state))
),

presence_differences as (
    select
        district,
        taken,
        reason,
        record_type,
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
