"""What a process serves of a pipeline's recorded rollout: a rollout runs only while the loaded
champion and challenger are the versions it was started with; otherwise the champion answers
alone and the reason is shown (``/models``) and alerted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ml_platform.serving.models import CHALLENGER, Deployment
from ml_platform.serving.rollout import Rollout


@dataclass(frozen=True)
class RolloutState:
    """The rollout recorded in the store and whether this process can run it: it runs only
    while the loaded champion and challenger are the versions it was started with."""

    rollout: Rollout | None = None
    problem: str | None = None  # why a recorded rollout does not run here

    @property
    def mode(self) -> str:
        """The mode actually served: 'off' unless a rollout is recorded and runnable."""
        if self.rollout is None or self.problem is not None:
            return "off"
        return self.rollout.mode

    def as_dict(self) -> dict[str, Any]:
        r = self.rollout
        return {
            "mode": self.mode,
            "recorded_mode": r.mode if r else "off",
            "id": r.id if r else None,
            "traffic_share": r.traffic_share if r else None,
            "champion_version": r.champion_version if r else None,
            "challenger_version": r.challenger_version if r else None,
            "started_at": r.started_at.isoformat() if r else None,
            "started_by": r.actor if r else None,
            "problem": self.problem,
        }


def rollout_state(rollout: Rollout | None, deployment: Deployment) -> RolloutState:
    if rollout is None:
        return RolloutState()
    champion, challenger = deployment.champion, deployment.challenger
    problems = []
    if challenger is None or challenger.version != rollout.challenger_version:
        now = f"version {challenger.version}" if challenger else "none loaded"
        error = deployment.errors.get(CHALLENGER)
        problems.append(
            f"the rollout's challenger is version {rollout.challenger_version}, the loaded "
            f"challenger is {now}" + (f" (load error: {error})" if error else "")
        )
    if champion is None or champion.version != rollout.champion_version:
        now = f"version {champion.version}" if champion else "none loaded"
        problems.append(
            f"the rollout was started against champion version {rollout.champion_version}, "
            f"the champion is now {now}"
        )
    if not problems:
        return RolloutState(rollout)
    return RolloutState(
        rollout,
        "; ".join(problems) + ": serving the champion only; stop the rollout "
        f"(ml-platform rollout {rollout.pipeline} stop) and start a new one",
    )
