"""`ml-platform example <name>`: land a dataset that ships inside scikit-learn as a CSV in the
platform home and run its declared pipeline (``examples/<name>/defs.yaml``) through the same
job path as `ml-platform run`. See docs/examples.md.

The examples are not in the project's code location (``ml_platform/defs``), so a fresh home's
UI is not cluttered by them; ``example_defs`` is their own code location, with the project's
resources and executor: `dagster dev -m ml_platform.cli.examples -a example_defs` shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ml_platform.cli.app import app, console
from ml_platform.home import PROJECT_ROOT, PlatformHome, activate_home
from ml_platform.spec import PipelineSpec, SpecError, load_spec_file

if TYPE_CHECKING:
    import dagster as dg
    import pandas as pd

EXAMPLES_ROOT = PROJECT_ROOT / "examples"
TARGET = "ml_platform.cli.examples:example_defs"


def _snake(name: str) -> str:
    return "_".join(name.lower().replace("(", " ").replace(")", " ").split())


def breast_cancer() -> pd.DataFrame:
    """Wisconsin diagnostic breast cancer (569 rows, 30 numeric measurements): the diagnosis as
    the strings scikit-learn names it ('malignant' / 'benign'), no timestamp."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.rename(columns=_snake)
    frame.insert(0, "sample_id", range(1, len(frame) + 1))
    frame["diagnosis"] = pd.Series(data.target_names[data.target.to_numpy()], index=frame.index)
    return frame


def diabetes() -> pd.DataFrame:
    """Diabetes progression one year after baseline (442 patients, 10 baseline variables in
    their original units; sex is an integer code), no timestamp."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False)
    frame = data.data.rename(columns=_snake)
    frame["sex"] = frame["sex"].astype("int64")
    frame.insert(0, "patient_id", range(1, len(frame) + 1))
    frame["progression"] = data.target.astype("float64")
    return frame


def wine() -> pd.DataFrame:
    """Wine recognition (178 wines from three cultivars, 13 chemical measurements): the cultivar
    as the integer class 0 / 1 / 2, no timestamp."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame = data.data.rename(columns=lambda c: _snake(c.replace("/", "_")))
    frame.insert(0, "wine_id", range(1, len(frame) + 1))
    frame["cultivar"] = data.target.astype("int64")
    return frame


DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "breast_cancer": breast_cancer,
    "diabetes": diabetes,
    "wine": wine,
}


def spec_file(name: str) -> Path:
    return EXAMPLES_ROOT / name / "defs.yaml"


def load_example(name: str) -> PipelineSpec:
    if name not in DATASETS:
        raise SpecError(f"no example named '{name}'; examples: {', '.join(sorted(DATASETS))}")
    path = spec_file(name)
    if not path.exists():
        raise SpecError(f"{path}: the example's spec file is missing")
    return load_spec_file(path)


def land(spec: PipelineSpec, home: PlatformHome, name: str) -> Path:
    """Write the dataset as the CSV the spec's source path names (temp file, then rename)."""
    target = Path(spec.source_path(home.root, PROJECT_ROOT))
    if any(ch in str(target) for ch in "*?["):
        raise SpecError(f"example '{name}': source.path must name one file, not a glob")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    DATASETS[name]().to_csv(tmp, index=False)
    tmp.replace(target)
    return target


def example_defs() -> dg.Definitions:
    """Every example pipeline with the project's resources and executor: the code location
    `ml-platform example` runs (a function, built when a run loads it)."""
    import dagster as dg

    from ml_platform.components.handoff import HandoffIOManager
    from ml_platform.components.ml_pipeline import MLPipelineComponent
    from ml_platform.components.mlflow_tracking import MlflowTrackingResource
    from ml_platform.defs.resources import EXECUTOR
    from ml_platform.resources import PlatformResource

    context: Any = None  # the component's build_defs does not read its load context
    pipelines = [MLPipelineComponent(load_example(n)).build_defs(context) for n in DATASETS]
    shared = dg.Definitions(
        resources={
            "platform": PlatformResource(home=dg.EnvVar("ML_PLATFORM_HOME")),
            "mlflow": MlflowTrackingResource(),
            "io_manager": HandoffIOManager(),
        },
        executor=EXECUTOR,
    )
    return dg.Definitions.merge(shared, *pipelines)


@app.command()
def example(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(sorted(DATASETS))}.")],
    land_only: Annotated[
        bool, typer.Option("--land-only", help="Write the CSV to the landing zone, do not run.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Land a dataset that ships with scikit-learn and run its example pipeline
    (examples/<name>/defs.yaml) like `ml-platform run` does."""
    try:
        spec = load_example(name)
    except SpecError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    home = activate_home()
    path = land(spec, home, name)
    console.print(f"landed {name} in {path}")
    if land_only:
        return
    from ml_platform.runner import run_pipeline

    ok = run_pipeline(spec, console, target=TARGET, verbose=verbose)
    raise typer.Exit(0 if ok else 1)
