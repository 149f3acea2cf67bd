-- A shorter window can never count more events than a longer one ending at the same time.
select customer_id, applied_at, apps_7d, apps_30d
from {{ ref('loan_default_customer_features') }}
where apps_7d > apps_30d or apps_7d < 1
