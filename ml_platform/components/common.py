"""What every asset of one pipeline shares: keys, group, owners, tags and code version."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from typing import Any

import dagster as dg

from ml_platform.spec import PipelineSpec

STAGES = (
    "raw",
    "validated",
    "features",
    "training_set",
    "candidate_model",
    "evaluation_report",
    "registered_model",
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

    def common(self, stage: str) -> dict[str, Any]:
        return {
            "key": self.key[stage],
            "group_name": self.spec.name,
            "owners": self.owners,
            "tags": self.tags,
            "code_version": self.code_version,
            "pool": self.pool,
        }
