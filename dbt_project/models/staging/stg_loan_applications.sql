-- One row per application; event time normalised to UTC (naive source times are UTC).
select
    customer_id,
    cast(applied_at as timestamptz) as applied_at,
    amount,
    term_months,
    annual_income,
    credit_score,
    employment_years,
    purpose,
    region,
    channel
from {{ source('loan_default', 'loan_default') }}
