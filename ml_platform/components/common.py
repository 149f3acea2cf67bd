"""What every asset of one pipeline shares: keys, group, owners, tags and code version."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from importlib.metadata import version
from typing import Any

import dagster as dg

from ml_platform.spec import PipelineSpec, window_seconds

STAGES = (
    "raw",
    "validated",
    "features",
    "training_set",
    "candidate_model",
    "evaluation_report",
    "registered_model",
    "monitoring_report",
)


# Steps that talk to stores outside the run (Feast registry, MLflow tracking and registry, the
# warehouse lock): retried with backoff on an error, each idempotent (content-addressed tables,
# a registration looked up by its MLflow run, monitoring history keyed by batch). A
# deterministic failure (a broken contract, a missing upstream) says allow_retries=False.
EXTERNAL = set(STAGES) - {"raw", "validated"}  # landed files and the data gate are local
RETRY = dg.RetryPolicy(
    max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def pipeline_pool(pipeline: str) -> str:
    return f"ml_platform-{pipeline}"


def owners_of(spec: PipelineSpec) -> list[str]:
    """The spec's owner as a Dagster owner: an e-mail address, or a team."""
    if spec.owner in ("", "unknown"):
        return []
    return [spec.owner if "@" in spec.owner else f"team:{spec.owner}"]


@dataclass(frozen=True)
class Stage:
    spec: PipelineSpec

    @cached_property
    def key(self) -> dict[str, dg.AssetKey]:
        return {stage: dg.AssetKey(f"{self.spec.name}_{stage}") for stage in STAGES}

    @property
    def owners(self) -> list[str]:
        return owners_of(self.spec)

    @property
    def tags(self) -> dict[str, str]:
        return {"pipeline": self.spec.name}

    @cached_property
    def code_version(self) -> str:
        """The package version and a hash of the spec: an asset is stale when either changes."""
        spec_hash = hashlib.sha256(self.spec.model_dump_json().encode()).hexdigest()[:12]
        return f"{version('ml_platform')}-{spec_hash}"

    @property
    def pool(self) -> str:
        """The Dagster pool of every asset of the pipeline: `ml-platform run` refuses to start
        while any run holding it is in progress, and an operator can limit it
        (`dagster instance concurrency set ml_platform-<name> 1`)."""
        return pipeline_pool(self.spec.name)

    def freshness(self, stage: str) -> dg.FreshnessPolicy | None:
        """Validated data older than the spec's max_data_lag, or a registered model older than
        its max_model_age, fails freshness (evaluated by the daemon; see the freshness sensor)."""
        window = {
            "validated": self.spec.monitoring.max_data_lag,
            "registered_model": self.spec.monitoring.max_model_age,
        }.get(stage)
        if window is None:
            return None
        return dg.FreshnessPolicy.time_window(fail_window=timedelta(seconds=window_seconds(window)))

    def common(self, stage: str) -> dict[str, Any]:
        return {
            "retry_policy": RETRY if stage in EXTERNAL else None,
            "freshness_policy": self.freshness(stage),
            "key": self.key[stage],
            "group_name": self.spec.name,
            "owners": self.owners,
            "tags": self.tags,
            "code_version": self.code_version,
            "pool": self.pool,
        }
