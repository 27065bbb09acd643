-- kind: table
-- grain: id
-- description: One row per live {record_type} record (id): the current version's typed fields,
-- when that version began (_updated_at, NULL if unknown), its event and how it was learned.
with history as (
    select * from clever.{record_type}_history
),

final as (
    select
        * exclude (
            valid_from, valid_to, is_current, is_deleted, _version, _missed_before, _unfit_values
        ),
        valid_from as _updated_at
    from history
    where is_current and not is_deleted
)

select * from final
