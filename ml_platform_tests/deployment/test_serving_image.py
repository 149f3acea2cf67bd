"""The serving image's packages (deploy/Dockerfile, target serving): requirements-serving.txt
is the exact closure of what the service imports, pinned as in requirements.txt, and the
service never imports the training side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml_platform.home import PROJECT_ROOT
from ml_platform_tests.deployment.artifacts import DEPLOY, load_script
from ml_platform_tests.production.conftest import ProductionEnv, production  # noqa: F401

SCRIPT = DEPLOY / "serving_requirements.py"
SERVING = PROJECT_ROOT / "requirements-serving.txt"
GUARD = Path(__file__).with_name("only_serving_packages.py")
TRAINING_SIDE = ("optuna", "dbt", "great_expectations", "dagster_dbt", "dagster")

# Imports ml_platform.serving in a fresh interpreter and names every training-side module in
# sys.modules. Modules given on the command line are imported first (the failing case).
IMPORT_CHECK = """
import sys
for name in sys.argv[2:]:
    __import__(name)
import ml_platform.serving, ml_platform.serving.app
bad = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1].split(',')))
print(','.join(bad))
sys.exit(1 if bad else 0)
"""

# What the service does beyond importing its package, under the import guard: its lazy
# imports (MLflow client and sklearn flavour, skops, Feast) and opening the home's stores.
SERVING_PATH = """
import os, tempfile
os.environ["ML_PLATFORM_HOME"] = tempfile.mkdtemp()
os.environ["FEAST_USAGE"] = "False"
import uvicorn, uvloop, httptools
import mlflow.artifacts, mlflow.sklearn, skops.io
from mlflow.tracking import MlflowClient
import ml_platform.serving.app as app
from ml_platform.features.feast_objects import feature_store
from ml_platform.home import platform_home
home = platform_home().ensure()
feature_store(home)
MlflowClient(tracking_uri=home.tracking_uri).search_registered_models()
app.app_from_env()
print("serving path ok")
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT
    )


def test_serving_requirements_are_up_to_date() -> None:
    result = run(str(SCRIPT), "--check")
    assert result.returncode == 0, result.stderr


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "requirements-serving.txt"
    lines = SERVING.read_text().splitlines()
    stale.write_text("\n".join(line for line in lines if not line.startswith("feast==")) + "\n")
    result = run(str(SCRIPT), "--check", "--output", str(stale))
    assert result.returncode == 1
    assert "out of date" in result.stderr


def test_serving_pins_are_a_subset_of_requirements() -> None:
    module = load_script(SCRIPT)
    full = module.read_pins(PROJECT_ROOT / "requirements.txt")
    serving = module.read_pins(SERVING)
    assert serving, "requirements-serving.txt pins nothing"
    assert {n: full.get(n) for n in serving} == serving
    assert not {"optuna", "dbt-core", "great-expectations", "dagster", "dagster-dbt"} & set(serving)
    assert len(serving) < len(full)


def test_a_non_exact_pin_is_refused(tmp_path: Path) -> None:
    module = load_script(SCRIPT)
    loose = tmp_path / "requirements.txt"
    loose.write_text("numpy==2.4.6\npandas>=2\n")
    with pytest.raises(ValueError, match=r"requirements.txt:2: 'pandas>=2' is not an exact pin"):
        module.read_pins(loose)


def test_serving_imports_nothing_from_the_training_side() -> None:
    result = run("-c", IMPORT_CHECK, ",".join(TRAINING_SIDE))
    assert result.returncode == 0, f"serving imported: {result.stdout} {result.stderr}"


def test_import_check_fails_when_a_training_module_is_imported() -> None:
    result = run("-c", IMPORT_CHECK, ",".join(TRAINING_SIDE), "optuna")
    assert result.returncode == 1
    assert result.stdout.strip() == "optuna"


def test_serving_path_runs_with_only_the_serving_packages() -> None:
    result = run(str(GUARD), str(SERVING), SERVING_PATH)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "serving path ok" in result.stdout


def test_guard_refuses_a_package_the_serving_file_lacks() -> None:
    result = run(str(GUARD), str(SERVING), "import optuna")
    assert result.returncode == 1
    assert "'optuna'" in result.stderr and "not in requirements-serving.txt" in result.stderr


# The same on the production profile (the environment comes from the `production` fixture):
# Postgres for MLflow and Feast's SQL registry, Redis for the online store, psycopg and redis
# among the serving pins.
SERVING_PATH_PRODUCTION = """
import mlflow.artifacts, mlflow.sklearn, skops.io
from mlflow.tracking import MlflowClient
import ml_platform.serving.app as app
from ml_platform.features.feast_objects import feature_store
from ml_platform.home import platform_home
home = platform_home().ensure()
assert home.tracking_uri.startswith("postgresql"), home.tracking_uri
store = feature_store(home)
assert store.config.online_store.type == "redis", store.config.online_store.type
store.list_feature_views()
MlflowClient(tracking_uri=home.tracking_uri).search_registered_models()
app.app_from_env()
print("serving path ok")
"""


@pytest.mark.production
def test_serving_path_on_the_production_profile(production: ProductionEnv) -> None:  # noqa: F811
    result = run(str(GUARD), str(SERVING), SERVING_PATH_PRODUCTION)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "serving path ok" in result.stdout
    assert production.password not in result.stdout + result.stderr
