"""What feature_repo/pipelines.py exposes to the Feast CLI: objects for every declared pipeline."""

from __future__ import annotations

from typing import Any

from ml_platform.features.definitions import feature_service
from ml_platform.features.feast_objects import service_objects
from ml_platform.home import PROJECT_ROOT, platform_home
from ml_platform.spec import load_all_specs

DEFS_ROOT = PROJECT_ROOT / "ml_platform" / "defs"


def repo_objects() -> list[Any]:
    """Current objects per pipeline; reading never assigns a new feature-service version."""
    home = platform_home()
    objects: list[Any] = []
    for spec in load_all_specs(DEFS_ROOT).values():
        objects.extend(service_objects(feature_service(spec, home, register=False), spec.name))
    return objects
