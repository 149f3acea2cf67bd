"""Batch scoring: each landed batch (a UTC day of event timestamps) of the feature table scored by
the champion, written to the warehouse with the model version that scored it.

Files: ``<home>/warehouse/<pipeline>/batch_predictions/<content-hash>.parquet`` (entity key,
event timestamp, score, label for a classifier, model version, batch), and ``manifest.json``
beside them naming, per batch, its file, version and row count. Both are written to a temporary
file and renamed. A batch is scored once: the first run scores the newest batch, later runs
every batch newer than the newest scored one (the monitoring report's rule, without its cap).
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ml_platform.components.common import RETRY, Stage
from ml_platform.home import PlatformHome
from ml_platform.resources import PlatformResource
from ml_platform.spec import PipelineSpec

CHAMPION = "champion"


def batch_predictions_key(stage: Stage) -> dg.AssetKey:
    return dg.AssetKey(f"{stage.spec.name}_batch_predictions")


def batch_dir(home: PlatformHome, pipeline: str) -> Path:
    return home.pipeline_dir(pipeline) / "batch_predictions"


def read_manifest(home: PlatformHome, pipeline: str) -> dict[str, Any]:
    path = batch_dir(home, pipeline) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"batches": {}}


def pending_batches(spec: PipelineSpec, frame: pd.DataFrame, done: set[str]) -> list[str]:
    days = pd.to_datetime(frame[spec.event_timestamp], utc=True).dt.strftime("%Y-%m-%d")
    landed = sorted(set(days))
    if not done:
        return landed[-1:]
    return [d for d in landed if d > max(done)]


def score_batches(
    spec: PipelineSpec, home: PlatformHome, model: Any, version: str, features_path: Path
) -> list[dict[str, Any]]:
    """Score the batches not scored yet; the manifest entries written (oldest first)."""
    from ml_platform.ingest.io import write_json, write_parquet_hashed
    from ml_platform.monitoring.reference import score

    frame = pd.read_parquet(features_path)
    manifest = read_manifest(home, spec.name)
    days = pd.to_datetime(frame[spec.event_timestamp], utc=True).dt.strftime("%Y-%m-%d")
    directory = batch_dir(home, spec.name)
    directory.mkdir(parents=True, exist_ok=True)
    threshold = float(getattr(getattr(spec, "serving", None), "threshold", 0.5))
    written = []
    for day in pending_batches(spec, frame, set(manifest["batches"])):
        batch = frame[days == day].reset_index(drop=True)
        scores = score(model, batch, spec)
        out = pd.DataFrame(
            {
                spec.entity_key: batch[spec.entity_key],
                spec.event_timestamp: batch[spec.event_timestamp],
                "score": scores,
            }
        )
        if spec.is_classification:
            out["label"] = (scores >= threshold).astype("int64")
        out["model_version"] = str(version)
        out["batch"] = day
        path, content = write_parquet_hashed(out, directory, lambda h: f"{h}.parquet")
        entry = {
            "batch": day,
            "path": str(path),
            "content_hash": content,
            "model_version": str(version),
            "rows": len(out),
            "scored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        manifest["batches"][day] = entry
        # the manifest after each batch: a crash between batches loses no finished one
        write_json(manifest, directory / "manifest.json")
        written.append(entry)
    return written


def batch_prediction_assets(stage: Stage) -> list[dg.AssetsDefinition]:
    spec, key = stage.spec, stage.key

    @dg.asset(
        key=batch_predictions_key(stage),
        ins={"features": dg.AssetIn(key["features"])},
        group_name=spec.name,
        owners=stage.owners,
        tags=stage.tags,
        code_version=stage.code_version,
        pool=stage.pool,
        retry_policy=RETRY,
        kinds={"mlflow", "parquet"},
    )
    def batch_predictions(platform: PlatformResource, features: dict) -> dg.MaterializeResult:
        """Each landed batch of feature rows scored by the champion (resolved by its registry
        alias, loaded by version), written to the warehouse with that model version."""
        home, tracking = platform.platform_home(), platform.tracking()
        mv = tracking.version_by_alias(spec.name, CHAMPION)
        if mv is None:
            return dg.MaterializeResult(
                metadata={"status": f"no champion for '{spec.name}' yet: nothing scored"}
            )
        version = str(mv.version)
        model = tracking.load_sklearn_model(f"models:/{spec.name}/{version}")
        written = score_batches(spec, home, model, version, Path(features["path"]))
        if not written:
            return dg.MaterializeResult(
                metadata={"status": "no new batch since the last scoring", "model_version": version}
            )
        return dg.MaterializeResult(
            metadata={
                "model_version": version,
                "rows": sum(e["rows"] for e in written),
                "batches": ", ".join(e["batch"] for e in written),
                "path": dg.MetadataValue.path(written[-1]["path"]),
                "manifest": dg.MetadataValue.path(
                    str(batch_dir(home, spec.name) / "manifest.json")
                ),
            }
        )

    return [batch_predictions]
