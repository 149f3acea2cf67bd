"""`ml-platform monitor`: the monitoring analysis of the Dagster asset on any CSV or Parquet
file, outside Dagster, against the champion's training reference.

Exit codes: 0 nothing breached, 1 something did (drift, a data-quality bound, the performance
floor; each named per chunk), 2 bad input (unreadable, empty, missing or mistyped columns, no
champion yet, contradictory options). Errors go to stderr, so ``--json`` output stays JSON.
"""

from __future__ import annotations

import json
import logging
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn

import typer

from ml_platform.cli.app import _spec, app

if TYPE_CHECKING:
    import pandas as pd

    from ml_platform.monitoring.analyze import BatchAnalysis
    from ml_platform.monitoring.reference import ChampionReference
    from ml_platform.spec import PipelineSpec


class ChunkBy(StrEnum):
    day = "day"


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _read(path: Path, what: str) -> pd.DataFrame:
    """A CSV (``.csv``, ``.csv.gz``) or Parquet file; any failure is bad input."""
    import pandas as pd

    if not path.is_file():
        _fail(f"cannot read the {what} file {path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz")):
            frame = pd.read_csv(path)
        elif name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        else:
            _fail(f"cannot read the {what} file {path}: expected a .csv or .parquet file")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        _fail(f"cannot read the {what} file {path}: {type(exc).__name__}: {exc}")
    if frame.empty:
        _fail(f"the {what} file {path} has no rows")
    return frame


def _require(frame: pd.DataFrame, columns: list[str], path: Path, why: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        _fail(f"{path} lacks {why}: missing columns {', '.join(missing)}")


def _numeric(frame: pd.DataFrame, columns: list[str], path: Path) -> pd.DataFrame:
    """Numeric columns as float64; text that is not a number is a type error naming the column
    and its first offending value (a CSV column with one stray word reads as text)."""
    import pandas as pd

    frame = frame.copy()
    for col in columns:
        values = frame[col]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            frame[col] = values.astype("float64")
            continue
        converted = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & converted.isna()
        if bad.any() or pd.api.types.is_datetime64_any_dtype(values):
            first = values[bad].iloc[0] if bad.any() else values.iloc[0]
            row = int(bad.to_numpy().argmax()) if bad.any() else 0
            _fail(
                f"{path}: column '{col}' must be numeric, found {first!r} in data row {row} "
                f"(read as {values.dtype})"
            )
        frame[col] = converted.astype("float64")
    return frame


def _utc(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    import pandas as pd

    try:
        return pd.to_datetime(frame[column], utc=True)
    except (ValueError, TypeError) as exc:
        _fail(f"{path}: column '{column}' is not a timestamp: {exc}")


def _labels(
    spec: PipelineSpec, data: pd.DataFrame, data_path: Path, labels_path: Path | None
) -> pd.Series | None:
    """The data's labels aligned with its rows (NaN where unknown): joined from the labels
    file on entity key and event timestamp, else the label column of the data, else None."""
    keys = [spec.entity_key, spec.event_timestamp]
    if labels_path is None:
        if spec.label not in data.columns:
            return None
        source, where = data[[spec.label]], data_path
    else:
        _require(data, keys, data_path, "the keys to join labels on")
        found = _read(labels_path, "labels")
        _require(found, [*keys, spec.label], labels_path, "entity key, event timestamp and label")
        left, right = data[keys].copy(), found[[*keys, spec.label]].copy()
        left[spec.event_timestamp] = _utc(left, spec.event_timestamp, data_path)
        right[spec.event_timestamp] = _utc(right, spec.event_timestamp, labels_path)
        right = right.drop_duplicates(keys, keep="last")
        try:
            joined = left.merge(right, on=keys, how="left", validate="many_to_one")
        except (ValueError, TypeError) as exc:  # e.g. a text key beside an integer key
            _fail(f"cannot join {labels_path} to {data_path} on {', '.join(keys)}: {exc}")
        source, where = joined[[spec.label]].set_axis(data.index), labels_path
    label = _numeric(source, [spec.label], where)[spec.label]
    if spec.is_classification and not label.dropna().isin([0.0, 1.0]).all():
        _fail(f"{where}: label '{spec.label}' must be 0 or 1 for a binary classifier")
    return None if label.isna().all() else label


def _tracking():  # noqa: ANN202 - a Tracking, imported lazily (MLflow is slow to import)
    """The store the pipeline's resource uses, without importing Dagster: MLFLOW_TRACKING_URI
    when set, else the SQLite store in the platform home."""
    from ml_platform.home import activate_home
    from ml_platform.training.tracking import Tracking

    home = activate_home()
    # stderr carries errors only: no artifact progress bars, no store-creation notices
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or home.tracking_uri
    return Tracking(uri, artifact_root=home.artifact_root)


def _champion(spec: PipelineSpec) -> ChampionReference:
    from ml_platform.monitoring.errors import MonitoringError
    from ml_platform.monitoring.reference import load_champion_reference

    try:
        return load_champion_reference(spec, _tracking())
    except MonitoringError as exc:
        _fail(str(exc))


def _print(analysis: BatchAnalysis) -> None:
    drift = analysis.drift
    if not drift.judged:
        verdict = "not judged (fewer rows than the spec's monitoring.min_rows)"
    else:
        verdict = "BREACHED" if analysis.breached else "ok"
    typer.echo(f"chunk {analysis.label}: {analysis.rows} rows: {verdict}")
    drifted = [f for f in drift.features if f.drifted]
    if drift.prediction is not None and drift.prediction.drifted:
        drifted.append(drift.prediction)
    for f in drifted:
        typer.echo(
            f"  drifted {f.feature}: {f.statistic} {f.value:.3g} >= threshold {f.threshold:g} "
            f"(Holm-adjusted p {f.p_adjusted:.2g})"
            + (f"; new categories: {', '.join(f.new_categories)}" if f.new_categories else "")
        )
    for breach in analysis.quality.breaches:
        typer.echo(f"  quality: {breach}")
    for breach in analysis.performance_breaches:
        typer.echo(f"  performance: {breach}")
    if not analysis.performance_breaches:
        _performance_line(analysis)


def _performance_line(analysis: BatchAnalysis) -> None:
    """The first metric the batch has, realized beside estimated, when nothing breached."""
    realized, estimated = analysis.realized or {}, analysis.estimated or {}
    metric = next(
        (m for m in ("roc_auc", "rmse", *realized, *estimated) if m in realized or m in estimated),
        None,
    )
    if metric is None:
        return
    parts = []
    if metric in realized:
        got = realized[metric]
        parts.append(f"realized {got.value:.3g} (95% CI {got.low:.3g}-{got.high:.3g})")
    if metric in estimated:
        parts.append(f"estimated {estimated[metric]:.3g}")
    typer.echo(f"  {metric}: {', '.join(parts)}")


@app.command()
def monitor(
    pipeline: str,
    data: Annotated[
        Path, typer.Option(help="CSV or Parquet with every model feature column of PIPELINE.")
    ],
    labels: Annotated[
        Path | None,
        typer.Option(
            help="CSV or Parquet of entity key, event timestamp and label, joined to the data "
            "on key and timestamp; default: the data's label column if it has one."
        ),
    ] = None,
    chunk_rows: Annotated[
        int | None, typer.Option(min=1, help="Judge every N consecutive rows on their own.")
    ] = None,
    chunk_by: Annotated[
        ChunkBy | None, typer.Option(help="Judge each UTC day of the event timestamp.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per chunk on stdout.")
    ] = False,
) -> None:
    """Drift, data quality and performance of DATA against PIPELINE's champion's training
    reference, per chunk. Exit 0 nothing breached, 1 something did, 2 bad input."""
    if chunk_rows is not None and chunk_by is not None:
        _fail("use --chunk-rows or --chunk-by, not both")
    spec = _spec(pipeline)
    frame = _read(data, "data").reset_index(drop=True)  # row positions index the scores
    _require(frame, spec.features.all_columns, data, "the model's feature columns")
    if chunk_by is not None:
        _require(frame, [spec.event_timestamp], data, "the event timestamp to chunk by day")
        frame[spec.event_timestamp] = _utc(frame, spec.event_timestamp, data)
    frame = _numeric(frame, spec.features.model_numeric, data)
    known = _labels(spec, frame, data, labels)

    from ml_platform.monitoring.analyze import analyze_batch
    from ml_platform.monitoring.chunks import chunks
    from ml_platform.monitoring.reference import score

    champion = _champion(spec)
    scores = score(champion.model, frame, spec)  # once: the chunks are positions of the frame
    if not as_json:
        typer.echo(
            f"{pipeline}: {len(frame)} rows of {data} against champion v{champion.version} "
            f"(reference: {len(champion.frame)} training rows)"
        )
    breached = 0
    by: Literal["day"] | None = None if chunk_by is None else "day"
    for label, part in chunks(frame, spec.event_timestamp, by, chunk_rows):
        rows = part.index.to_numpy()
        part_labels = None if known is None else known.iloc[rows]
        analysis = analyze_batch(spec, champion, part, part_labels, label, scores[rows])
        breached += analysis.breached
        if as_json:
            typer.echo(json.dumps({"pipeline": pipeline, **analysis.to_dict()}, allow_nan=False))
        else:
            _print(analysis)
    if not as_json:
        typer.echo(f"{breached} breached chunk(s)" if breached else "nothing breached")
    raise typer.Exit(1 if breached else 0)
