-- The feature table's key: one row per customer and event time (the point-in-time join needs it).
select customer_id, applied_at, count(*) as n
from {{ ref('loan_default_customer_features') }}
group by customer_id, applied_at
having count(*) > 1
