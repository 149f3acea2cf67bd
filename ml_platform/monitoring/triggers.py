"""When a pipeline retrains itself: the decision behind the retraining sensor, framework-free.

A trigger is the first of these that holds (and is listed in the spec's ``retrain_on``):
- no champion yet, and validated data exists (``first_model``);
- drift in ``persistence`` judged batches in a row against the current champion (``drift``);
- the newest judged batch's realized metric, or its estimate before labels arrive, below the
  floor (``performance``);
- the champion older than ``max_model_age`` (``model_age``).
Apart from a first model, nothing triggers within ``cooldown`` of the last triggered retrain,
and never while a retrain of the pipeline is queued or running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ml_platform.monitoring.history import BatchRecord
from ml_platform.monitoring.persistence import breach_streak
from ml_platform.spec import PipelineSpec, window_seconds

Reason = Literal["first_model", "drift", "performance", "model_age"]
TAG = "ml_platform/trigger"
DETAIL_TAG = "ml_platform/trigger_detail"
DATA_TAG = "ml_platform/trigger_data_version"


@dataclass(frozen=True)
class Trigger:
    reason: Reason
    data_version: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def run_key(self) -> str:
        """One run per trigger and data version (per champion for its age)."""
        scope = self.detail.get("champion_version") if self.reason == "model_age" else None
        return f"{self.reason}:{scope or self.data_version}"

    def tags(self) -> dict[str, str]:
        return {
            TAG: self.reason,
            DETAIL_TAG: json.dumps(self.detail, sort_keys=True, default=str)[:1000],
            DATA_TAG: self.data_version,
        }

    def summary(self) -> str:
        numbers = ", ".join(f"{k}={v}" for k, v in sorted(self.detail.items()))
        return f"{self.reason} ({numbers}) on data version {self.data_version}"


@dataclass(frozen=True)
class Decision:
    trigger: Trigger | None
    why: str


def _candidates(
    spec: PipelineSpec,
    data_version: str,
    champion_version: str,
    champion_created_at: datetime,
    history: list[BatchRecord],
    now: datetime,
) -> list[Trigger]:
    settings, found = spec.monitoring, []
    judged = [r for r in history if r.judged and r.champion_version == champion_version]
    streak = breach_streak([r.drifted for r in judged])
    if judged and streak >= settings.persistence:
        drifted = judged[-1].analysis.get("drifted_features", [])
        found.append(
            Trigger(
                "drift",
                data_version,
                {
                    "batch": judged[-1].batch,
                    "streak": streak,
                    "persistence": settings.persistence,
                    "drifted": ",".join(drifted) or "prediction",
                    "champion_version": champion_version,
                },
            )
        )
    if judged and (missed := judged[-1].analysis.get("performance_breaches")):
        found.append(
            Trigger(
                "performance",
                data_version,
                {
                    "batch": judged[-1].batch,
                    "champion_version": champion_version,
                    "below_floor": "; ".join(missed),
                },
            )
        )
    age = now - champion_created_at
    if age > timedelta(seconds=window_seconds(settings.max_model_age)):
        found.append(
            Trigger(
                "model_age",
                data_version,
                {
                    "champion_version": champion_version,
                    "age_days": round(age.total_seconds() / 86_400, 2),
                    "max_model_age": settings.max_model_age,
                },
            )
        )
    return [t for t in found if t.reason in settings.retrain_on]


def decide(
    spec: PipelineSpec,
    *,
    data_version: str | None,
    champion_version: str | None,
    champion_created_at: datetime | None,
    history: list[BatchRecord],
    last_triggered_at: datetime | None,
    in_flight: bool,
    now: datetime,
) -> Decision:
    """Whether to request a retraining run now, and why (or why not)."""
    if data_version is None:
        return Decision(None, "no validated data yet")
    if in_flight:
        return Decision(None, "a retraining run of this pipeline is queued or running")
    if champion_version is None or champion_created_at is None:
        return Decision(Trigger("first_model", data_version), "no champion yet")
    found = _candidates(spec, data_version, champion_version, champion_created_at, history, now)
    if not found:
        return Decision(None, f"champion v{champion_version}: no trigger holds")
    cooldown = timedelta(seconds=window_seconds(spec.monitoring.cooldown))
    if last_triggered_at is not None and now - last_triggered_at < cooldown:
        until = (last_triggered_at + cooldown).isoformat(timespec="seconds")
        return Decision(None, f"{found[0].summary()} held back: cooldown until {until}")
    return Decision(found[0], found[0].summary())
