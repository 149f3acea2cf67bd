"""Tags that link an MLflow run or model version back to the Dagster run that made it, and to
the trigger that started a retraining run (reason, the numbers behind it, the data version)."""

import dagster as dg

from ml_platform.monitoring import triggers

TRIGGER_TAGS = {
    triggers.TAG: "trigger",
    triggers.DETAIL_TAG: "trigger_detail",
    triggers.DATA_TAG: "trigger_data_version",
}


def run_tags(context: dg.AssetExecutionContext) -> dict[str, str]:
    tags = {
        "dagster_run_id": context.run.run_id,
        "dagster_asset_key": context.asset_key.to_user_string(),
    }
    if context.has_partition_key:
        tags["dagster_partition"] = context.partition_key
    for dagster_tag, mlflow_tag in TRIGGER_TAGS.items():
        if dagster_tag in context.run.tags:
            tags[mlflow_tag] = context.run.tags[dagster_tag]
    return tags
