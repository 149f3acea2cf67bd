"""A malformed spec fails at load with a message naming the file, the key and the expectation."""

from pathlib import Path

import pytest
import yaml

from ml_platform.spec import COMPONENT_TYPE, SpecError, load_all_specs, load_spec_file
from ml_platform_tests.helpers import DEMO_SPEC


def _write(tmp_path: Path, mutate) -> Path:  # noqa: ANN001 - a callable editing the dict
    doc = yaml.safe_load(DEMO_SPEC.read_text())
    mutate(doc["attributes"])
    path = tmp_path / "bad" / "defs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_demo_spec_loads() -> None:
    spec = load_spec_file(DEMO_SPEC)
    assert spec.name == "loan_default"
    assert spec.task == "binary_classification"
    assert "apps_30d" in spec.features.all_columns
    assert spec.primary_metric == "roc_auc"


@pytest.mark.parametrize(
    ("mutate", "key", "expected"),
    [
        (lambda a: a["model"].update(n_trials="ten"), "model.n_trials", "integer"),
        (
            lambda a: a["model"].update(estimator="sklearn.ensemble.NoSuchModel"),
            "model.estimator",
            "no attribute 'NoSuchModel'",
        ),
        (
            lambda a: a["model"].update(estimator="not_a_package.Model"),
            "model.estimator",
            "cannot import module",
        ),
        (lambda a: a.update(task="clustering"), "task", "binary_classification"),
        (lambda a: a.pop("label"), "label", "Field required"),
        (lambda a: a.update(colour="blue"), "colour", "Extra inputs are not permitted"),
        (
            lambda a: a["features"]["aggregates"][0].update(window="a month"),
            "features.aggregates.0.window",
            "must look like '30d'",
        ),
        (
            lambda a: a["features"]["aggregates"][2].pop("column"),
            "features.aggregates.2",
            "needs a 'column'",
        ),
        (lambda a: a.update(name="Loan Default"), "name", "lower_snake_case"),
        (
            lambda a: a["model"]["search_space"].update(lr={"type": "float", "low": 1, "high": 0}),
            "model.search_space.lr",
            "'low' <= 'high'",
        ),
        (lambda a: a.update(slices=["amount"]), "<top level>", "not categorical features"),
        (lambda a: a["split"].update(test_fraction=0.9), "split.test_fraction", "less than 0.5"),
    ],
)
def test_malformed_spec_names_file_key_and_expectation(
    tmp_path: Path, mutate, key: str, expected: str
) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(SpecError) as err:
        load_spec_file(path)
    message = str(err.value)
    assert str(path) in message
    assert f"key '{key}'" in message
    assert expected in message


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "defs.yaml"
    path.write_text(f"type: {COMPONENT_TYPE}\nattributes: [unclosed\n")
    with pytest.raises(SpecError, match=str(path)):
        load_spec_file(path)


def test_duplicate_pipeline_names_are_refused(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "defs.yaml").write_text(DEMO_SPEC.read_text())
    with pytest.raises(SpecError, match="declared twice"):
        load_all_specs(tmp_path)


def test_source_path_expands_home_and_project_root(tmp_path: Path) -> None:
    spec = load_spec_file(DEMO_SPEC)
    assert spec.source_path(tmp_path, Path("/proj")).startswith(str(tmp_path / "landing"))
    relative = spec.model_copy(
        update={"source": spec.source.model_copy(update={"path": "data/x.csv"})}
    )
    assert relative.source_path(tmp_path, Path("/proj")) == "/proj/data/x.csv"
    assert relative.source.file_format == "csv"
