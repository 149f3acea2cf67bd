"""Outcomes (the labels that arrive after a prediction): validated, stored append-only and
idempotently, and joined to the prediction log.

Storage: ``<home.warehouse>/<pipeline>/outcomes/<hash>.parquet``, one file per distinct
ingested content (the hash of the normalised rows), written under a temporary name and renamed,
so ingesting the same file twice stores it once and a crash leaves no torn file. Columns:
``entity`` (str), ``outcome_at`` (UTC), ``outcome`` (float64; 0/1 for a classifier),
``request_id`` (str or null), ``ingested_at`` (UTC).

The join (:func:`join_outcomes`): an outcome with a ``request_id`` labels that request's row for
its entity (exact); one without labels, per entity, the latest prediction logged at or before
the outcome time and no more than ``window`` earlier. Every arm's row of a labelled request row
(champion and shadow challenger) gets the label. A request row is labelled at most once (the
earliest outcome wins; among several rows of one request for the same entity, the first).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ml_platform.home import PlatformHome
from ml_platform.spec import PipelineSpec, window_seconds

COLUMNS = ("entity", "outcome_at", "outcome", "request_id", "ingested_at")
DEFAULT_WINDOW = "7d"
TEMP_PREFIX = "."


class OutcomeError(ValueError):
    """Outcomes that cannot be ingested; the message names the column, the row and the value."""


def outcomes_dir(home: PlatformHome, pipeline: str) -> Path:
    return home.pipeline_dir(pipeline) / "outcomes"


def join_window(spec: PipelineSpec) -> timedelta:
    """How far back an outcome without a request id looks for its prediction: the spec's
    ``rollout.label_window`` when it declares one, else 7 days."""
    raw = getattr(spec.rollout, "label_window", None) or DEFAULT_WINDOW
    return timedelta(seconds=window_seconds(str(raw)))


def read_file(path: Path) -> pd.DataFrame:
    """A CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file of outcomes."""
    if not path.is_file():
        raise OutcomeError(f"cannot read {path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz")):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        elif name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        else:
            raise OutcomeError(f"cannot read {path}: expected a .csv or .parquet file")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        if isinstance(exc, OutcomeError):
            raise
        raise OutcomeError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if frame.empty:
        raise OutcomeError(f"{path} has no rows")
    return frame


def _first_bad(values: pd.Series, bad: pd.Series) -> str:
    i = int(np.flatnonzero(bad.to_numpy())[0])
    value = values.iloc[i]
    value = value.item() if isinstance(value, np.generic) else value  # 2, not np.int64(2)
    return f"data row {i + 1}: {value!r}"


def normalise(
    frame: pd.DataFrame,
    spec: PipelineSpec,
    timestamp_column: str | None = None,
    label_column: str | None = None,
    request_id_column: str = "request_id",
) -> pd.DataFrame:
    """Validate ``frame`` (the spec's entity key, a timestamp, the label, optionally a request
    id) and return it in the stored columns. Timestamps without a timezone are taken as UTC."""
    ts_col = timestamp_column or spec.event_timestamp
    label_col = label_column or spec.label
    roles = {
        spec.entity_key: "the spec's entity key",
        ts_col: "the outcome timestamp",
        label_col: "the label",
    }
    missing = [f"'{c}' ({why})" for c, why in roles.items() if c not in frame.columns]
    if missing:
        raise OutcomeError(
            f"missing column {', '.join(missing)}; found {', '.join(map(str, frame.columns))} "
            "(name other columns with --timestamp-column / --label-column)"
        )
    frame = frame.reset_index(drop=True)
    entity = frame[spec.entity_key]
    null_entity = entity.isna() | (entity.astype(str).str.strip() == "")
    if null_entity.any():
        raise OutcomeError(
            f"column '{spec.entity_key}': empty entity key at {_first_bad(entity, null_entity)}"
        )
    # an integer key read from Parquet as float (1.0) must match the log's "1"
    if pd.api.types.is_float_dtype(entity) and (entity == entity.round()).all():
        entity = entity.astype("int64")
    raw_ts = frame[ts_col]
    ts = pd.to_datetime(raw_ts, utc=True, errors="coerce", format="mixed")
    bad_ts = ts.isna()
    if bad_ts.any():
        raise OutcomeError(
            f"column '{ts_col}': cannot parse a timestamp at {_first_bad(raw_ts, bad_ts)} "
            "(use ISO 8601, e.g. 2026-01-31T12:00:00Z)"
        )
    raw_label = frame[label_col]
    positive = getattr(spec, "positive_label", None)
    if spec.is_classification and positive is not None:
        return _finish(
            frame, spec, entity, ts, _positive(raw_label, positive, label_col), request_id_column
        )
    label = pd.to_numeric(
        raw_label.replace({"True": 1, "False": 0, "true": 1, "false": 0, True: 1, False: 0}),
        errors="coerce",
    ).astype("float64")
    if spec.is_classification:
        bad_label = ~label.isin([0.0, 1.0])
        if bad_label.any():
            raise OutcomeError(
                f"column '{label_col}': a classifier's label must be 0 or 1, not "
                f"{_first_bad(raw_label, bad_label)}"
            )
    elif spec.is_multiclass:
        values = label.to_numpy()
        bad_label = pd.Series(~np.isfinite(values) | (values != np.round(values)))
        if bad_label.any():
            raise OutcomeError(
                f"column '{label_col}': a multiclass label must be an integer class value, not "
                f"{_first_bad(raw_label, bad_label)}"
            )
    else:
        bad_label = ~np.isfinite(label.to_numpy())
        if bad_label.any():
            raise OutcomeError(
                f"column '{label_col}': a regressor's label must be a finite number, not "
                f"{_first_bad(raw_label, pd.Series(bad_label))}"
            )
    return _finish(frame, spec, entity, ts, label, request_id_column)


def _positive(raw: pd.Series, positive: object, column: str) -> pd.Series:
    """A classifier declared with ``positive_label``: that value is 1, the other one 0."""
    missing = raw.isna()
    if missing.any():
        raise OutcomeError(f"column '{column}': no label at {_first_bad(raw, missing)}")
    text = raw.astype(str).str.strip()
    values = sorted(set(text))
    if len(values) > 2:
        raise OutcomeError(
            f"column '{column}': a binary label has two values, found {len(values)}: "
            f"{', '.join(values[:5])} (positive_label is {positive!r})"
        )
    return (text == str(positive)).astype("float64")


def _finish(
    frame: pd.DataFrame,
    spec: PipelineSpec,
    entity: pd.Series,
    ts: pd.Series,
    label: pd.Series,
    request_id_column: str,
) -> pd.DataFrame:
    if request_id_column in frame.columns:
        rid = frame[request_id_column].astype("string").str.strip()
        rid = rid.mask(rid == "", pd.NA)
    else:
        rid = pd.Series(pd.NA, index=frame.index, dtype="string")
    out = pd.DataFrame(
        {
            "entity": entity.astype(str).str.strip(),
            "outcome_at": ts.astype("datetime64[us, UTC]"),
            "outcome": label,
            "request_id": rid,
        }
    )
    return out.sort_values(["entity", "outcome_at", "request_id"], kind="stable").reset_index(
        drop=True
    )


def content_hash(frame: pd.DataFrame) -> str:
    """The hash of the normalised rows (the ingestion time excluded)."""
    digest = hashlib.sha256()
    digest.update(
        frame[["entity", "outcome_at", "outcome", "request_id"]].to_csv(index=False).encode()
    )
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class Stored:
    path: Path
    rows: int
    new: bool  # False: the same content was ingested before


def store(home: PlatformHome, pipeline: str, frame: pd.DataFrame) -> Stored:
    """Write normalised outcomes once under their content hash (temporary file, then rename)."""
    directory = outcomes_dir(home, pipeline)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{content_hash(frame)}.parquet"
    if target.exists():
        return Stored(target, len(frame), False)
    tmp = directory / f"{TEMP_PREFIX}{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        frame.assign(ingested_at=pd.Timestamp(datetime.now(UTC)).as_unit("us")).to_parquet(
            tmp, index=False
        )
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return Stored(target, len(frame), True)


def read_outcomes(home: PlatformHome, pipeline: str) -> pd.DataFrame:
    """Every stored outcome; the same (entity, time, request id) ingested twice with different
    labels keeps the most recently ingested one."""
    files = sorted(outcomes_dir(home, pipeline).glob("[!.]*.parquet"))
    if not files:
        return pd.DataFrame(
            {
                "entity": pd.Series(dtype="string"),
                "outcome_at": pd.Series(dtype="datetime64[us, UTC]"),
                "outcome": pd.Series(dtype="float64"),
                "request_id": pd.Series(dtype="string"),
                "ingested_at": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    frame["request_id"] = frame["request_id"].astype("string")
    frame["entity"] = frame["entity"].astype("string")
    key = frame["request_id"].fillna("")
    frame = (
        frame.assign(_key=key)
        .sort_values(["ingested_at"], kind="stable")
        .drop_duplicates(["entity", "outcome_at", "_key"], keep="last")
        .drop(columns="_key")
    )
    return frame.sort_values(["outcome_at", "entity"], kind="stable").reset_index(drop=True)


def join_outcomes(
    predictions: pd.DataFrame, outcomes: pd.DataFrame, window: timedelta
) -> pd.DataFrame:
    """The prediction log's rows with an ``outcome`` column (NaN where no outcome joined) and
    ``outcome_at``; see the module docstring for the rule."""
    preds = predictions.copy()
    preds["entity"] = preds["entity"].astype("string")
    preds["request_id"] = preds["request_id"].astype("string")
    empty = preds.assign(
        outcome=np.nan, outcome_at=pd.Series(pd.NaT, index=preds.index, dtype="datetime64[us, UTC]")
    )
    if preds.empty or outcomes.empty:
        return empty
    # One anchor per request row: its entity and the time it was logged (the served arm's).
    anchors = (
        preds.sort_values(["served", "logged_at"], ascending=[False, True], kind="stable")
        .drop_duplicates(["request_id", "row"])
        .loc[:, ["request_id", "row", "entity", "logged_at"]]
    )
    anchors["logged_at"] = anchors["logged_at"].astype("datetime64[us, UTC]")
    outs = outcomes.loc[:, ["entity", "outcome_at", "outcome", "request_id"]].copy()
    outs["outcome_at"] = outs["outcome_at"].astype("datetime64[us, UTC]")
    outs["entity"] = outs["entity"].astype("string")
    outs["request_id"] = outs["request_id"].astype("string")
    exact_outs = outs[outs["request_id"].notna()]
    window_outs = outs[outs["request_id"].isna()].drop(columns="request_id")
    matched = []
    if not exact_outs.empty:
        exact = exact_outs.merge(anchors, on=["request_id", "entity"], how="inner")
        matched.append(
            exact.sort_values("row").drop_duplicates(["request_id", "entity", "outcome_at"])
        )
    if not window_outs.empty:
        asof = pd.merge_asof(
            window_outs.sort_values("outcome_at"),
            anchors.sort_values("logged_at"),
            left_on="outcome_at",
            right_on="logged_at",
            by="entity",
            direction="backward",
            allow_exact_matches=True,
            tolerance=pd.Timedelta(window),
        )
        matched.append(asof[asof["request_id"].notna()])
    if not matched:
        return empty
    labelled = (
        pd.concat(matched, ignore_index=True)
        .sort_values(["outcome_at"], kind="stable")
        .drop_duplicates(["request_id", "row"], keep="first")
        .loc[:, ["request_id", "row", "outcome", "outcome_at"]]
    )
    labelled["request_id"] = labelled["request_id"].astype("string")
    labelled["row"] = labelled["row"].astype("int64")
    return preds.merge(labelled, on=["request_id", "row"], how="left")
