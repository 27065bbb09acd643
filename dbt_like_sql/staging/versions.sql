-- kind: table
-- grain: record_type, id, _seq
-- description: One row per version of every object of every record type (record_type, id, _seq),
-- ordered by `_seq` (event ids, never times), with where its state lives (state_kind
-- 'object' or 'prior' of state_event_id, or 'snapshot' of state_taken); the
-- clever.<record_type>_history models read and type that state.
with events as (
    select * from staging.events
),

baselines as (
    select
        district,
        taken,
        reason,
        -- A baseline of a district without events comes before every event.
        coalesce(anchor_event_id, '000000000000000000000000') as anchor_event_id,
        coalesce(
            first_retained_event_id, anchor_event_id, '000000000000000000000000'
        ) as first_retained_event_id
    from raw.baselines
),

snapshots as (
    select
        snapshots.district,
        snapshots.record_type,
        snapshots.object_id as id,
        snapshots.taken,
        baselines.reason,
        baselines.anchor_event_id,
        clever_fingerprint(snapshots.record_type, snapshots.object) as fingerprint
    from raw.snapshots as snapshots
    inner join baselines using (district, taken)
    where snapshots.problem is null
),

-- After a gap, history resumes at the time of the first event the API still held.
resyncs as (
    select
        baselines.district,
        baselines.taken,
        baselines.first_retained_event_id,
        coalesce(
            first_event.created, clever_id_time(baselines.first_retained_event_id)
        ) as resumed_at
    from baselines
    left join raw.events as first_event
        on first_event.event_id = baselines.first_retained_event_id
    where baselines.reason = 'resync'
),

-- Every object's steps in one order: `<event id>1` for an event, `<anchor>2` for an initial
-- baseline (right after the newest event it had seen), `<first retained id>0` for a resync.
event_steps as (
    select
        district,
        record_type,
        id,
        event_id || '1' as _seq,
        'event' as step,
        action,
        event_at,
        event_id,
        fingerprint,
        prior_fingerprint
    from events
),

baseline_steps as (
    select
        district,
        record_type,
        id,
        anchor_event_id || '2' as _seq,
        'baseline' as step,
        fingerprint,
        taken
    from snapshots
    where reason <> 'resync'
),

known_objects as (
    select distinct district, record_type, id from events
    union
    select distinct district, record_type, id from snapshots
),

resync_steps as (
    select
        known_objects.district,
        known_objects.record_type,
        known_objects.id,
        resyncs.first_retained_event_id || '0' as _seq,
        'resync' as step,
        resyncs.resumed_at as event_at,
        resync_snapshots.fingerprint,
        resyncs.taken,
        resync_snapshots.id is not null as in_baseline
    from known_objects
    inner join resyncs using (district)
    left join snapshots as resync_snapshots
        on
            resync_snapshots.district = resyncs.district
            and resync_snapshots.taken = resyncs.taken
            and resync_snapshots.record_type = known_objects.record_type
            and resync_snapshots.id = known_objects.id
),

steps as (
    select * from event_steps
    union all by name
    select * from baseline_steps
    union all by name
    select * from resync_steps
),

with_next as (
    select
        *,
        row_number() over object_steps as position,
        lead(step) over object_steps as next_step,
        lead(action) over object_steps as next_action,
        lead(event_id) over object_steps as next_event_id,
        lead(fingerprint) over object_steps as next_fingerprint,
        lead(prior_fingerprint) over object_steps as next_prior_fingerprint
    from steps
    window object_steps as (partition by district, record_type, id order by _seq)
),

-- What each step says the object looks like afterwards. An initial baseline only counts for an
-- object it is the first news of (events already told the rest), unless the object's next event
-- creates it: then the baseline raced with that creation. A resync step takes the state at the
-- resume time from the object's next event, or else from the new baseline; when that next event
-- creates the object, nothing tells whether it lived at the resume time (a re-share) or not (a
-- delete in the gap), so the step says nothing.
step_states as (
    select
        *,
        case
            when step = 'event' then action <> 'deleted'
            when step = 'baseline' then true
            when next_step = 'event' then true
            else in_baseline
        end as live,
        case
            when step in ('event', 'baseline') then fingerprint
            when next_step = 'event' and next_action = 'updated' then next_prior_fingerprint
            when next_step = 'event' then next_fingerprint
            else fingerprint
        end as state_fingerprint,
        case
            when step = 'event' then 'object'
            when step = 'baseline' then 'snapshot'
            when next_step = 'event' and next_action = 'updated' then 'prior'
            when next_step = 'event' and next_action = 'deleted' then 'object'
            when in_baseline then 'snapshot'
        end as state_kind,
        case
            when step = 'event' then event_id
            when step = 'resync' and next_step = 'event' then next_event_id
        end as state_event_id,
        case
            when step = 'baseline' then taken
            when step = 'resync' and next_step is distinct from 'event' and in_baseline then taken
        end as state_taken
    from with_next
    where
        step = 'event'
        or step = 'baseline'
        and position = 1
        and not coalesce(next_step = 'event' and next_action = 'created', false)
        or step = 'resync'
        and not coalesce(next_step = 'event' and next_action = 'created', false)
),

with_previous as (
    select
        *,
        row_number() over object_steps as version_position,
        lag(live) over object_steps as previous_live,
        lag(state_fingerprint) over object_steps as previous_fingerprint,
        lag(state_kind) over object_steps as previous_kind,
        lag(state_event_id) over object_steps as previous_event_id,
        lag(state_taken) over object_steps as previous_taken
    from step_states
    window object_steps as (partition by district, record_type, id order by _seq)
),

-- The state each step must agree with the previous version on: an update's rebuilt prior
-- state, a delete's last state, a resync's state at the resume time.
comparisons as (
    select
        *,
        case
            when step = 'event' and action = 'updated' then 'prior'
            else state_kind
        end as check_kind,
        case
            when step = 'event' and action = 'updated' then prior_fingerprint
            else state_fingerprint
        end as check_fingerprint,
        previous_live is not null
        and (step = 'resync' or step = 'event' and action <> 'created') as compared
    from with_previous
),

-- Fingerprints cover the spec's fields in any key order; where they differ, the states are
-- compared exactly (keys an update added, and fields outside the spec, are not differences).
candidates as (
    select *
    from comparisons
    where
        compared
        and previous_live
        and (step = 'resync' and live or step = 'event')
        and check_fingerprint is distinct from previous_fingerprint
),

candidate_states as (
    select
        candidates.district,
        candidates.record_type,
        candidates.id,
        candidates._seq,
        candidates.check_kind,
        case candidates.check_kind
            when 'prior' then clever_prior_state(
                this_event.object, this_event.previous_attributes
            )
            when 'object' then this_event.object
            when 'snapshot' then this_snapshot.object
        end as state,
        case candidates.previous_kind
            when 'prior' then clever_prior_state(
                previous_event.object, previous_event.previous_attributes
            )
            when 'object' then previous_event.object
            when 'snapshot' then previous_snapshot.object
        end as previous_state
    from candidates
    left join raw.events as this_event
        on this_event.event_id = candidates.state_event_id
    left join raw.snapshots as this_snapshot
        on
            this_snapshot.district = candidates.district
            and this_snapshot.taken = candidates.state_taken
            and this_snapshot.record_type = candidates.record_type
            and this_snapshot.object_id = candidates.id
    left join raw.events as previous_event
        on previous_event.event_id = candidates.previous_event_id
    left join raw.snapshots as previous_snapshot
        on
            previous_snapshot.district = candidates.district
            and previous_snapshot.taken = candidates.previous_taken
            and previous_snapshot.record_type = candidates.record_type
            and previous_snapshot.object_id = candidates.id
),

verdicts as (
    select
        district,
        record_type,
        id,
        _seq,
        clever_agrees(state, previous_state)
        and (check_kind = 'prior' or clever_agrees(previous_state, state)) as agrees
    from candidate_states
),

judged as (
    select
        comparisons.*,
        coalesce(verdicts.agrees, true) as agrees
    from comparisons
    left join verdicts using (district, record_type, id, _seq)
),

event_versions as (
    select
        district,
        record_type,
        id,
        _seq,
        event_at as valid_from,
        action = 'deleted' as is_deleted,
        action as _change,
        event_id as _event_id,
        coalesce(compared and (not previous_live or not agrees), false) as _missed_before,
        'object' as state_kind,
        event_id as state_event_id,
        null::varchar as state_taken
    from judged
    where step = 'event'
),

-- The first news of an object is an update or a delete: it existed before, as rebuilt.
reconstructed_versions as (
    select
        district,
        record_type,
        id,
        event_id || '0' as _seq,
        null::timestamptz as valid_from,
        false as is_deleted,
        'reconstructed' as _change,
        event_id as _event_id,
        false as _missed_before,
        case when action = 'updated' then 'prior' else 'object' end as state_kind,
        event_id as state_event_id,
        null::varchar as state_taken
    from judged
    where step = 'event' and version_position = 1 and action in ('updated', 'deleted')
),

baseline_versions as (
    select
        district,
        record_type,
        id,
        _seq,
        null::timestamptz as valid_from,
        false as is_deleted,
        'baseline' as _change,
        null::varchar as _event_id,
        false as _missed_before,
        state_kind,
        state_event_id,
        state_taken
    from judged
    where step = 'baseline'
),

-- A resync opens a version where the state at the resume time differs from the open version,
-- and a tombstone where a live object is gone (its attributes: the last state known).
resync_versions as (
    select
        district,
        record_type,
        id,
        _seq,
        event_at as valid_from,
        not live as is_deleted,
        'resync' as _change,
        null::varchar as _event_id,
        false as _missed_before,
        case when live then state_kind else previous_kind end as state_kind,
        case when live then state_event_id else previous_event_id end as state_event_id,
        case when live then state_taken else previous_taken end as state_taken
    from judged
    where
        step = 'resync'
        and (
            live and (previous_live is null or not previous_live or not agrees)
            or not live and previous_live
        )
),

final as (
    select * from event_versions
    union all
    select * from reconstructed_versions
    union all
    select * from baseline_versions
    union all
    select * from resync_versions
)

select * from final
