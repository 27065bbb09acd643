-- kind: table
-- grain: id, _seq
-- description: One row per version of a {record_type} record (id, _seq), ordered by `_seq` (event
-- ids, never times), with where its state lives: the object of event state_event_id ('object'),
-- the state before that event ('prior'), or the baseline state_taken ('snapshot'). The
-- clever.{record_type}_history model adds that state, typed in staging.{record_type}_states, and
-- the intervals.
with events as not materialized (
    select * from staging.{record_type}_events
),

snapshots as not materialized (
    select * from staging.{record_type}_snapshots
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

baseline_records as (
    select
        snapshots.district,
        snapshots.id,
        snapshots.taken,
        baselines.reason,
        baselines.anchor_event_id,
        clever_fingerprint_{record_type}(snapshots.object) as fingerprint
    from snapshots
    inner join baselines using (district, taken)
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
-- Fingerprints tell states apart: after an event and, for an update, before it.
event_steps as (
    select
        district,
        id,
        event_id || '1' as _seq,
        'event' as step,
        action,
        event_at,
        event_id,
        clever_fingerprint_{record_type}(object) as fingerprint,
        case
            when action = 'updated' then clever_fingerprint_{record_type}(
                coalesce(json_merge_patch(object, previous_attributes), object)
            )
        end as prior_fingerprint
    from events
),

baseline_steps as (
    select
        district,
        id,
        anchor_event_id || '2' as _seq,
        'baseline' as step,
        fingerprint,
        taken
    from baseline_records
    where reason <> 'resync'
),

known_objects as (
    select distinct district, id from events
    union
    select distinct district, id from baseline_records
),

resync_steps as (
    select
        known_objects.district,
        known_objects.id,
        resyncs.first_retained_event_id || '0' as _seq,
        'resync' as step,
        resyncs.resumed_at as event_at,
        resyncs.taken,
        resync_records.fingerprint,
        resync_records.id is not null as in_baseline
    from known_objects
    inner join resyncs using (district)
    left join baseline_records as resync_records
        on
            resync_records.district = resyncs.district
            and resync_records.taken = resyncs.taken
            and resync_records.id = known_objects.id
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
    window object_steps as (partition by district, id order by _seq)
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
            when step = 'baseline' or next_step = 'event' then true
            else in_baseline
        end as live,
        case
            when step = 'event' then 'object'
            when step = 'baseline' then 'snapshot'
            when next_step = 'event' and next_action = 'updated' then 'prior'
            when next_step = 'event' then 'object'
            when in_baseline then 'snapshot'
        end as state_kind,
        case
            when step = 'event' then event_id
            when step = 'resync' and next_step = 'event' then next_event_id
        end as state_event_id,
        case
            when step = 'baseline' then taken
            when step = 'resync' and next_step is distinct from 'event' and in_baseline then taken
        end as state_taken,
        case
            when step in ('event', 'baseline') then fingerprint
            when next_step = 'event' and next_action = 'updated' then next_prior_fingerprint
            when next_step = 'event' then next_fingerprint
            else fingerprint
        end as state_fingerprint
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
    window object_steps as (partition by district, id order by _seq)
),

-- What each step must agree on with the version before it: an update's rebuilt prior state,
-- a delete's last state, a resync's state at the resume time.
comparisons as (
    select
        *,
        case
            when step = 'event' and action = 'updated' then prior_fingerprint
            else state_fingerprint
        end as check_fingerprint,
        previous_live is not null
        and (step = 'resync' or step = 'event' and action <> 'created') as compared
    from with_previous
),

-- Fingerprints cover the spec's fields in any key order. Where they differ, the step may only
-- hold keys an update added, which is no disagreement: those candidates are compared exactly,
-- typed field by field.
candidates as (
    select *
    from comparisons
    where
        compared
        and previous_live
        and (step = 'resync' and live or step = 'event')
        and check_fingerprint is distinct from previous_fingerprint
),

candidate_states as materialized (
    select
        candidates.id,
        candidates._seq,
        candidates.step = 'event' and candidates.action = 'updated'
        or candidates.state_kind = 'prior' as rebuilt,
        clever_parse_{record_type}(
            case
                when candidates.step = 'event' and candidates.action = 'updated'
                    then clever_prior_state(this_event.object, this_event.previous_attributes)
                when candidates.state_kind = 'prior'
                    then clever_prior_state(this_event.object, this_event.previous_attributes)
                else coalesce(this_event.object, this_snapshot.object)
            end
        ) as state,
        clever_parse_{record_type}(
            case
                when candidates.previous_kind = 'prior'
                    then clever_prior_state(
                        previous_event.object, previous_event.previous_attributes
                    )
                else coalesce(previous_event.object, previous_snapshot.object)
            end
        ) as previous_state
    from candidates
    left join events as this_event on this_event.event_id = candidates.state_event_id
    left join snapshots as this_snapshot
        on
            this_snapshot.district = candidates.district
            and this_snapshot.taken = candidates.state_taken
            and this_snapshot.id = candidates.id
    left join events as previous_event on previous_event.event_id = candidates.previous_event_id
    left join snapshots as previous_snapshot
        on
            previous_snapshot.district = candidates.district
            and previous_snapshot.taken = candidates.previous_taken
            and previous_snapshot.id = candidates.id
),

-- The typed states are joined back to the candidates' keys so that DuckDB holds them in a hash
-- table and compares them in whole chunks: compared as they came out of the joins above, a few
-- dozen rows at a time, the 46,000 candidates of 1,000,000 events cost ~3 s of CPU, not 0.3 s.
verdicts as (
    select
        id,
        _seq,
        clever_agrees_{record_type}(state, previous_state)
        and (rebuilt or clever_agrees_{record_type}(previous_state, state)) as agrees
    from (select id, _seq from candidates) as candidate_keys
    inner join candidate_states using (id, _seq)
),

judged as (
    select
        comparisons.*,
        coalesce(verdicts.agrees, true) as agrees
    from comparisons
    left join verdicts using (id, _seq)
),

event_versions as (
    select
        district,
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
