"""`ml-platform contract export`: the compiled pandera schema written with pandera's own
``to_yaml`` / ``to_script`` loads in a plain Python process (no ml_platform import) and validates
freshly generated demo data; the same schema catches a defect there."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ml_platform.cli import app
from ml_platform.ingest.datagen import GeneratorConfig, land

runner = CliRunner()

NOTEBOOK = """
import sys
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

kind, schema_path, data_path = sys.argv[1:]
if kind == "yaml":
    schema = pa.DataFrameSchema.from_yaml(schema_path)
else:
    import importlib.util
    spec = importlib.util.spec_from_file_location("exported", schema_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    schema = module.schema
frame = pd.read_parquet(data_path)
validated = schema.validate(frame, lazy=True)
print("valid", len(validated), validated["credit_score"].dtype)
bad = frame.assign(credit_score=frame["credit_score"].where(frame.index % 10 != 0, 2000))
try:
    schema.validate(bad, lazy=True)
except SchemaErrors as exc:
    cases = exc.failure_cases
    print("failures", sorted(set(cases["column"] + ":" + cases["check"])))
assert "ml_platform" not in sys.modules
"""


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo data as a user would read it in a notebook: the generator's daily files, pandas."""
    landing = tmp_path_factory.mktemp("landing")
    files = land(GeneratorConfig(events=3_000, days=10, seed=5), landing)
    target = landing / "demo.parquet"
    pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).to_parquet(target)
    return target


@pytest.mark.parametrize(("fmt", "suffix"), [("yaml", "yaml"), ("python", "py")])
def test_exported_schema_validates_demo_data_in_a_plain_process(
    fmt: str, suffix: str, demo_data: Path, tmp_path: Path
) -> None:
    target = tmp_path / f"loan_default_schema.{suffix}"
    result = runner.invoke(
        app, ["contract", "export", "loan_default", "--format", fmt, "--output", str(target)]
    )
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "not_future(applied_at)" in text.split("\n\n")[0]  # named as not exported
    script = tmp_path / "notebook.py"
    script.write_text(textwrap.dedent(NOTEBOOK))
    run = subprocess.run(
        [sys.executable, str(script), fmt, str(target), str(demo_data)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"valid {len(pd.read_parquet(demo_data))} Int64"
    assert lines[1] == "failures ['credit_score:in_range(300.0, 850.0)']"
    assert "FutureWarning" not in run.stderr


def test_export_prints_yaml_by_default() -> None:
    result = runner.invoke(app, ["contract", "export", "loan_default"])
    assert result.exit_code == 0, result.output
    assert "schema_type: dataframe" in result.output and "strict: true" in result.output


def test_export_of_an_unknown_pipeline_fails() -> None:
    result = runner.invoke(app, ["contract", "export", "nope"])
    assert result.exit_code == 2 and "nope" in result.output
