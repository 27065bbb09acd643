-- kind: view
-- grain: district, taken, id
-- description: One row per {record_type} record in a complete baseline (district, taken, id).
with source as (
    select * from raw.snapshots
    where record_type = '{record_type}' and problem is null
),

final as (
    select
        district,
        taken,
        object_id as id,
        object,
        _loaded_at
    from source
)

select * from final
