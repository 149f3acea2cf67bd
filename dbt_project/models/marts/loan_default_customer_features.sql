-- Per-customer rolling aggregates as of each application (the current one included), plus the
-- application's own attributes: the feature table of the loan_default pipeline. Column names
-- match the pipeline spec's declared features, so the spec can point at this model.
select
    customer_id,
    applied_at,
    amount,
    term_months,
    annual_income,
    credit_score,
    employment_years,
    purpose,
    region,
    channel,
    cast(count(*) over w7 as bigint) as apps_7d,
    cast(count(*) over w30 as bigint) as apps_30d,
    cast(sum(amount) over w30 as double) as amount_sum_30d,
    cast(avg(amount) over w90 as double) as amount_mean_90d,
    cast(max(amount) over w90 as double) as amount_max_90d
from {{ ref('stg_loan_applications') }}
window
    w7 as (partition by customer_id order by applied_at
           range between interval 7 day preceding and current row),
    w30 as (partition by customer_id order by applied_at
            range between interval 30 day preceding and current row),
    w90 as (partition by customer_id order by applied_at
            range between interval 90 day preceding and current row)
