"""Steps that talk to stores outside the run carry a retry policy (components/common.py), so
each must be idempotent: running it again on the same inputs adds no table, no model version,
no ledger decision and no monitoring row."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ml_platform.components.common import EXTERNAL, RETRY, Stage
from ml_platform.home import PlatformHome
from ml_platform.monitoring.history import MonitoringHistory, history_path
from ml_platform.registry.ledger import PromotionLedger
from ml_platform.training.tracking import Tracking
from ml_platform_tests.helpers import materialize, small_spec

pytestmark = pytest.mark.slow


def _state(home: PlatformHome, name: str) -> dict[str, object]:
    tracking = Tracking(home.tracking_uri, home.artifact_root)
    ledger = PromotionLedger(home.ledger_db, tracking)
    tables = sorted(
        str(p.relative_to(home.root))
        for p in home.pipeline_dir(name).rglob("*.parquet")
        if "monitoring" not in p.parts
    )
    return {
        "versions": sorted(
            int(v.version) for v in tracking.client.search_model_versions(f"name = '{name}'")
        ),
        "decisions": [(d.action, d.version) for d in ledger.history(name)],
        "evidence": len(ledger.evidence(name)),
        "tables": tables,
        "monitoring": [
            (r.batch, r.champion_version)
            for r in MonitoringHistory(history_path(home.pipeline_dir(name))).batches(name)
        ],
    }


def test_external_steps_retry_with_backoff() -> None:
    from ml_platform.components.assets import pipeline_assets

    spec = small_spec()
    retried = {
        a.key.to_user_string().removeprefix(f"{spec.name}_")
        for a in pipeline_assets(spec)
        if isinstance(a, dg.AssetsDefinition) and a.op.retry_policy == RETRY
    }
    assert retried == EXTERNAL
    assert Stage(spec).common("validated")["retry_policy"] is None  # a contract breach is final


def test_running_each_external_step_again_duplicates_nothing(
    home: PlatformHome, landed: list[Path]
) -> None:
    spec = small_spec()
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize(spec, home, instance).success
        # The monitoring report of the first run found no champion yet: judge against v1 now.
        report = f"{spec.name}_monitoring_report"
        assert materialize(spec, home, instance, selection=report).success
        before = _state(home, spec.name)
        assert before["versions"] == [1] and before["monitoring"]
        # The candidate last: running it again trains a new candidate (a new MLflow run, by
        # design), which the steps after it would then register.
        for step in sorted(EXTERNAL - {"candidate_model"}) + ["candidate_model"]:
            result = materialize(spec, home, instance, selection=f"{spec.name}_{step}")
            assert result.success, step
            after = _state(home, spec.name)
            assert after == before, f"running {step} again changed {_diff(before, after)}"


def _diff(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    return {k: (before[k], after[k]) for k in before if before[k] != after[k]}
