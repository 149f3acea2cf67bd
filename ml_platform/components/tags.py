"""Tags that link an MLflow run or model version back to the Dagster run that made it."""

import dagster as dg


def run_tags(context: dg.AssetExecutionContext) -> dict[str, str]:
    tags = {
        "dagster_run_id": context.run.run_id,
        "dagster_asset_key": context.asset_key.to_user_string(),
    }
    if context.has_partition_key:
        tags["dagster_partition"] = context.partition_key
    return tags
