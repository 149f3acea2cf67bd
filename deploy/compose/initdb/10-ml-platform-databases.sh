#!/bin/sh
# Run once by the postgres image on an empty data directory: the five databases of the
# production profile (names from deploy/.env; ml_platform/profile.py has the same defaults).
# ml-platform also creates them when missing; doing it here lets the MLflow server start first.
set -eu
for db in "${ML_PLATFORM_PG_DAGSTER_DB:-ml_platform_dagster}" \
          "${ML_PLATFORM_PG_MLFLOW_DB:-ml_platform_mlflow}" \
          "${ML_PLATFORM_PG_FEAST_DB:-ml_platform_feast}" \
          "${ML_PLATFORM_PG_OPTUNA_DB:-ml_platform_optuna}" \
          "${ML_PLATFORM_PG_LEDGER_DB:-ml_platform_ledger}" \
          "${ML_PLATFORM_PG_PREDICTIONS_DB:-ml_platform_predictions}"; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE \"$db\""
done
