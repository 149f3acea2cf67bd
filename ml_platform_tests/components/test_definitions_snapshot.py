"""A snapshot of the whole definitions: asset keys, deps, checks and whether they block, owners,
kinds, groups, jobs and sensors. A change to the graph shows up here as a readable diff; accept
it with ``ML_PLATFORM_UPDATE_SNAPSHOTS=1 pytest ml_platform_tests/components``."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def snapshot(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "materializable": node.is_materializable,
            "has_code_version": node.code_version is not None,
            "has_description": bool(node.description),
            "automation": node.automation_condition is not None,
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string()):
        spec = graph.get_check_spec(check_key)
        checks[check_key.to_user_string()] = {"blocking": spec.blocking}
    jobs = {
        job.name: sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
        for job in defs.resolve_all_job_defs()
        if not job.name.startswith("__")
    }
    sensors = {
        s.name: {
            "default_status": s.default_status.value,
            "jobs": sorted(t.job_name for t in s.targets),
        }
        for s in defs.get_repository_def().sensor_defs
    }
    return {"assets": assets, "checks": checks, "jobs": jobs, "sensors": sensors}


def test_definitions_match_the_snapshot() -> None:
    from ml_platform.definitions import defs

    current = snapshot(defs)
    if os.environ.get("ML_PLATFORM_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = SNAPSHOT.read_text().splitlines()
    now = json.dumps(current, indent=2, sort_keys=True).splitlines()
    diff = "\n".join(difflib.unified_diff(expected, now, "snapshot", "definitions", lineterm=""))
    assert not diff, (
        f"the definitions changed; if intended, accept with ML_PLATFORM_UPDATE_SNAPSHOTS=1:\n{diff}"
    )
