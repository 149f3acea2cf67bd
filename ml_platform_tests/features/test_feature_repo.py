"""feature_repo/: what `feast plan/apply` reads is generated from the declared pipeline specs."""

from __future__ import annotations

import os

import pytest

from ml_platform.home import PROJECT_ROOT, PlatformHome

REPO = PROJECT_ROOT / "feature_repo"


def test_feast_cli_sees_every_declared_pipeline(home: PlatformHome) -> None:
    from feast.repo_operations import get_repo_files, parse_repo

    assert os.environ["ML_PLATFORM_HOME"] == str(home.root)
    assert [p.name for p in get_repo_files(REPO)] == ["pipelines.py"]
    contents = parse_repo(REPO)
    assert {e.name for e in contents.entities} >= {"loan_default_customer_id"}
    views = {v.name: v for v in contents.feature_views}
    assert "loan_default_fv" in views
    fv = views["loan_default_fv"]
    assert fv.batch_source.path == str(home.pipeline_dir("loan_default") / "features.parquet")
    assert {f.name for f in fv.features} >= {"apps_7d", "credit_score", "purpose"}
    assert "loan_default_v1" in {s.name for s in contents.feature_services}


def test_feast_apply_against_the_platform_home(
    home: PlatformHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast.repo_operations import apply_total

    from ml_platform.features.feast_objects import feature_store, repo_config

    # What `feast -c feature_repo apply` does, in-process: it chdirs and imports from the repo.
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    apply_total(repo_config(home), REPO, skip_source_validation=True)
    store = feature_store(home)
    assert "loan_default_v1" in {s.name for s in store.list_feature_services()}
    assert (home.feast_dir / "registry.db").exists()
