"""The pipeline spec: the typed model of a declared ML pipeline (framework-free).

A spec lives in ``ml_platform/defs/<anything>/<name>/defs.yaml`` under ``attributes:`` with
``type: ml_platform.components.MLPipelineComponent``; see docs/pipeline-spec.md.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

COMPONENT_TYPE = "ml_platform.components.MLPipelineComponent"
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
_WINDOW = re.compile(r"^(\d+)([dhm])$")
Task = Literal["binary_classification", "multiclass_classification", "regression"]
RetrainTrigger = Literal["drift", "performance", "model_age"]
TimeUnit = Literal["year", "date", "s", "ms"]
# A pipeline without an event timestamp gets this column at ingest, one constant value
# (NO_EVENT_TIME) on every row: Feast and dbt need a timestamp; splits, windows and TTLs do not
# use it (docs/pipeline-spec.md, "No event timestamp").
NO_EVENT_TIME_COLUMN = "_event_timestamp"
NO_EVENT_TIME = "2000-01-01T00:00:00+00:00"


class SpecError(ValueError):
    """A pipeline spec that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_import(path: str) -> Any:
    """Resolve ``package.module.Attr`` or ``package.module:Attr`` to the object."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    if not module_name:
        raise ValueError(f"'{path}' is not an import path like 'package.module.Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module '{module_name}' for '{path}': {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module '{module_name}' has no attribute '{attr}'") from None


class EventTimeSpec(_Strict):
    """How the event timestamp column is read: converted once, at ingest, to a UTC timestamp."""

    column: str
    unit: TimeUnit | None = Field(
        default=None,
        description="'year': an integer year (January 1st, UTC); 'date': a date or "
        "'YYYY-MM-DD' string (midnight UTC); 's' / 'ms': epoch seconds / milliseconds.",
    )
    format: str | None = Field(
        default=None,
        description="A strftime format of a string column, e.g. '%d/%m/%Y'.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> EventTimeSpec:
        if self.unit and self.format:
            raise ValueError(
                f"declare either 'unit' ({self.unit}) or 'format' ({self.format!r}) "
                f"for column '{self.column}', not both"
            )
        if self.format is not None and "%" not in self.format:
            raise ValueError(
                f"format {self.format!r} has no '%' directive; write it like '%d/%m/%Y'"
            )
        return self


def _event_time_input(data: Any) -> Any:
    """Spec attributes with ``event_timestamp`` in any declared form turned into the column name
    the graph uses (``event_timestamp``) and its conversion (``event_time``)."""
    if not isinstance(data, dict) or "event_time" in data:
        return data
    data = dict(data)
    raw = data.get("event_timestamp")
    if raw is None:
        data["event_timestamp"] = NO_EVENT_TIME_COLUMN
    elif isinstance(raw, dict):
        try:
            form = EventTimeSpec.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"'{'.'.join(str(p) for p in e['loc']) or 'event_timestamp'}': {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(
                f"event_timestamp {raw!r}: {problems}. Expected a column name, or "
                f"{{column: <name>, unit: year|date|s|ms}} or "
                f"{{column: <name>, format: '%d/%m/%Y'}}"
            ) from None
        data["event_timestamp"] = form.column
        if form.unit or form.format:
            data["event_time"] = form
    return data


class SourceSpec(_Strict):
    """Where raw data lands: a file path or glob, CSV or Parquet."""

    path: str = Field(
        description="Path or glob; '{home}' expands to the platform home, "
        "relative paths are relative to the project root, $VARS are expanded."
    )
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="Inferred from the extension when omitted."
    )

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        return "csv" if self.path.lower().rstrip("*").endswith((".csv", ".csv.gz")) else "parquet"


class AggregateFeature(_Strict):
    """A per-entity windowed aggregate as of each event time (current event included)."""

    name: str
    agg: Literal["count", "sum", "mean", "min", "max", "std"]
    column: str | None = Field(default=None, description="Not needed for 'count'.")
    window: str = Field(description="Look-back window: '<n>d', '<n>h' or '<n>m'.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not _WINDOW.match(value):
            raise ValueError(f"window '{value}' must look like '30d', '12h' or '90m'")
        return value

    @model_validator(mode="after")
    def _column(self) -> AggregateFeature:
        if self.agg != "count" and not self.column:
            raise ValueError(f"aggregate '{self.name}' with agg '{self.agg}' needs a 'column'")
        return self

    @property
    def window_sql(self) -> str:
        amount, unit = _WINDOW.match(self.window).groups()  # type: ignore[union-attr]
        return f"INTERVAL {int(amount)} {dict(d='DAY', h='HOUR', m='MINUTE')[unit]}"


DatePart = Literal["year", "quarter", "month", "day", "day_of_week", "day_of_year", "hour"]
Encoding = Literal["onehot", "target"]
# A categorical feature with more distinct values than this in the training window is target
# encoded (scikit-learn's TargetEncoder) unless features.encodings declares otherwise
# (docs/training.md, "Encodings").
MAX_ONEHOT_CATEGORIES = 50


class DateFeature(_Strict):
    """A date or datetime column used through numbers derived from it once, at validation
    (``ingest.prepare.date_features``): calendar parts, and its age in days at the event time.
    The derived columns are named ``<column>_<part>`` and ``<column>_age_days``."""

    column: str
    parts: list[DatePart] = Field(
        default_factory=list,
        description="Calendar parts as numbers: year, quarter, month (1-12), day (of month), "
        "day_of_week (0 = Monday), day_of_year, hour.",
    )
    age_days: bool = Field(
        default=False,
        description="Days from the column's value to the row's event time (needs an "
        "event_timestamp).",
    )
    format: str | None = Field(
        default=None, description="A strftime format of a text column, e.g. '%d/%m/%Y'."
    )

    @model_validator(mode="after")
    def _something(self) -> DateFeature:
        if not self.parts and not self.age_days:
            raise ValueError(
                f"date feature '{self.column}' derives nothing: declare parts (e.g. "
                f"[day_of_week, month]) and/or age_days: true"
            )
        if len(set(self.parts)) != len(self.parts):
            raise ValueError(f"date feature '{self.column}' repeats a part: {self.parts}")
        if self.format is not None and "%" not in self.format:
            raise ValueError(
                f"format {self.format!r} has no '%' directive; write it like '%d/%m/%Y'"
            )
        return self

    @property
    def outputs(self) -> list[str]:
        names = [f"{self.column}_{part}" for part in self.parts]
        return names + ([f"{self.column}_age_days"] if self.age_days else [])


class FeaturesSpec(_Strict):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    dates: list[DateFeature] = Field(
        default_factory=list,
        description="Date or datetime columns used through derived numbers (parts, age).",
    )
    encodings: dict[str, Encoding] = Field(
        default_factory=dict,
        description="Per categorical feature: 'onehot' or 'target'; default: 'target' when "
        f"the training window holds more than {MAX_ONEHOT_CATEGORIES} distinct values.",
    )
    aggregates: list[AggregateFeature] = Field(default_factory=list)
    custom: list[str] = Field(
        default_factory=list,
        description="Import paths of functions DataFrame -> DataFrame adding numeric columns.",
    )
    custom_outputs: list[str] = Field(
        default_factory=list, description="Numeric columns the custom functions add."
    )
    ttl: str | None = Field(
        default=None,
        description="Feature time-to-live ('30d', '12h', '90m'): a feature row "
        "older than this at label (or serving) time counts as missing. None: never expires.",
    )
    dbt_model: str | None = Field(
        default=None,
        description="A dbt model in dbt_project/ that computes this pipeline's "
        "feature table instead of the declared SQL; it must output the entity key, the event "
        "timestamp and every declared feature column.",
    )

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | None) -> str | None:
        if value is not None and not _WINDOW.match(value):
            raise ValueError(f"ttl '{value}' must look like '30d', '12h' or '90m'")
        return value

    @property
    def ttl_seconds(self) -> int | None:
        if self.ttl is None:
            return None
        amount, unit = _WINDOW.match(self.ttl).groups()  # type: ignore[union-attr]
        return int(amount) * {"d": 86_400, "h": 3_600, "m": 60}[unit]

    @field_validator("custom")
    @classmethod
    def _importable(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not callable(resolve_import(path)):
                raise ValueError(f"'{path}' is not callable")
        return paths

    @model_validator(mode="after")
    def _encodings(self) -> FeaturesSpec:
        unknown = sorted(set(self.encodings) - set(self.categorical))
        if unknown:
            raise ValueError(
                f"encodings {unknown} are not categorical features; an encoding applies to "
                f"a column declared under features.categorical"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when unused, so a spec without them dumps (and hashes) as before.
        data = handler(self)
        for key in ("dates", "encodings"):
            if not data.get(key):
                data.pop(key, None)
        return data

    @property
    def date_outputs(self) -> list[str]:
        """The numeric columns derived from ``dates`` at validation."""
        return [name for d in self.dates for name in d.outputs]

    @property
    def model_numeric(self) -> list[str]:
        return [
            *self.numeric,
            *self.date_outputs,
            *(a.name for a in self.aggregates),
            *self.custom_outputs,
        ]

    @property
    def all_columns(self) -> list[str]:
        return [*self.model_numeric, *self.categorical]


class ParamSpace(_Strict):
    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical search space needs non-empty 'choices'")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"an {self.type} search space needs 'low' <= 'high'")
        return self


class ModelSpec(_Strict):
    estimator: str = Field(description="Import path of a scikit-learn compatible estimator.")
    params: dict[str, Any] = Field(default_factory=dict)
    search_space: dict[str, ParamSpace] = Field(default_factory=dict)
    n_trials: int = Field(default=10, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0)
    balance_classes: bool = Field(
        default=True, description="Weight samples inversely to class frequency (classification)."
    )

    @field_validator("estimator")
    @classmethod
    def _estimator(cls, path: str) -> str:
        est = resolve_import(path)
        if not (isinstance(est, type) and hasattr(est, "fit") and hasattr(est, "get_params")):
            raise ValueError(f"'{path}' is not a scikit-learn estimator class")
        return path


class SplitSpec(_Strict):
    validation_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5)


class GatesSpec(_Strict):
    min_metrics: dict[str, float] = Field(default_factory=dict)
    max_metrics: dict[str, float] = Field(default_factory=dict)
    champion_margin: float = Field(default=0.01, ge=0)
    champion_metric: str | None = None
    beat_baseline: bool = True
    max_latency_ms: float = Field(default=500.0, gt=0, description="Per 1,000-row batch.")
    max_memory_mb: float = Field(default=1024.0, gt=0)
    bootstrap_samples: int = Field(default=500, ge=50)
    min_slice_rows: int = Field(
        default=200, ge=1, description="Smaller slices are reported, not gated."
    )
    auto_promote: bool = Field(
        default=True,
        description="Promote a challenger that passes "
        "every gate and scores strictly better than the champion.",
    )


def window_seconds(window: str) -> int:
    """'30d' / '12h' / '90m' in seconds."""
    match = _WINDOW.match(window)
    if match is None:
        raise ValueError(f"'{window}' must look like '30d', '12h' or '90m'")
    amount, unit = match.groups()
    return int(amount) * {"d": 86_400, "h": 3_600, "m": 60}[unit]


class MonitoringSpec(_Strict):
    """How each landed batch is compared with the champion's training reference, and when the
    pipeline retrains itself. Every default is explained in docs/monitoring.md."""

    enabled: bool = Field(default=True, description="Monitor each validated batch.")
    psi_threshold: float = Field(
        default=0.2,
        gt=0,
        description="Numeric features and predictions: PSI at or above this "
        "(with a significant Holm-corrected p-value) is drift.",
    )
    wasserstein_threshold: float = Field(
        default=0.1,
        gt=0,
        description="Numeric features: Wasserstein distance divided by the "
        "reference's standard deviation; reported beside PSI, drift when either is breached.",
    )
    jensen_shannon_threshold: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Categorical features: Jensen-Shannon distance "
        "(base 2) at or above this (with a significant corrected p-value) is drift.",
    )
    alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Family-wise error rate of the per-feature tests "
        "(KS, chi-square), Holm-corrected over the features of a batch.",
    )
    min_rows: int = Field(
        default=200, ge=10, description="Smaller batches or chunks are reported, not judged."
    )
    persistence: int = Field(
        default=2,
        ge=1,
        description="Consecutive drifted batches before drift alerts and triggers a retrain.",
    )
    max_null_increase: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Data quality: a column's null rate above the "
        "reference's by more than this is a breach.",
    )
    max_out_of_range: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Data quality: fraction of a numeric column "
        "outside the reference's [min, max] above this is a breach.",
    )
    max_new_categories: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Data quality: fraction of rows with a category "
        "unseen in the reference above this is a breach.",
    )
    min_performance: dict[str, float] | None = Field(
        default=None,
        description="Retrain when the realized (or, before labels arrive, "
        "estimated) metric falls below this floor (rises above it for lower-is-better metrics "
        "such as brier or rmse); default: the gates' min_metrics.",
    )
    labels: str | None = Field(
        default=None,
        description="Path or glob of late-arriving label files (entity key, "
        "event timestamp, label), joined to the batches they belong to; '{home}' expands.",
    )
    max_model_age: str = Field(
        default="30d",
        description="Retrain when the champion is older than this; also the "
        "registered model's freshness policy.",
    )
    max_data_lag: str = Field(
        default="2d",
        description="Freshness policy of the validated data: fail when no new "
        "batch was validated for this long.",
    )
    cooldown: str = Field(
        default="1d", description="No retrain is triggered within this long of the last one."
    )
    retrain_on: list[RetrainTrigger] = Field(
        default_factory=lambda: list(get_args(RetrainTrigger)),
        description="Which triggers start a retraining run.",
    )

    @field_validator("max_model_age", "max_data_lag", "cooldown")
    @classmethod
    def _duration(cls, value: str) -> str:
        window_seconds(value)
        return value


RolloutMode = Literal["off", "shadow", "ab"]
RolloutTest = Literal["fixed", "sequential"]


class RolloutSpec(_Strict):
    """How a challenger earns promotion on live traffic (``ml-platform rollout``, online
    evaluation). Every key is explained in docs/pipeline-spec.md and docs/serving.md."""

    mode: RolloutMode = Field(
        default="off",
        description="'shadow': the challenger scores every request off the response path; "
        "'ab': a sticky share of entities is served by the challenger; 'off': no rollout. "
        "The mode `ml-platform rollout <pipeline> start` uses unless told otherwise.",
    )
    traffic_share: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="A/B: the share of entities (by a stable hash of the entity key) the "
        "challenger serves. Unused in shadow, where it serves nobody.",
    )
    min_samples: int = Field(
        default=1000,
        ge=10,
        description="Labelled predictions per arm before the online test decides.",
    )
    test: RolloutTest = Field(
        default="sequential",
        description="'fixed': one test at the horizon min_samples; 'sequential': an always-"
        "valid sequential test (mSPRT) that may be looked at after every batch of labels.",
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="False-positive rate.")
    power: float = Field(
        default=0.8, gt=0, lt=1, description="Power to detect a difference of `margin`."
    )
    margin: float = Field(
        default=0.01,
        ge=0,
        description="Non-inferiority margin on `metric`, in the metric's units: the challenger "
        "may be promoted when it is not worse than the champion by more than this.",
    )
    metric: str | None = Field(
        default=None, description="Online metric to judge by; default: the champion metric."
    )


class ServingSpec(_Strict):
    """How the online service answers (``ml-platform serve``)."""

    threshold: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Classifiers: a row's label is 1 when its score is at or above this.",
    )


class PipelineSpec(_Strict):
    name: str
    description: str = ""
    owner: str = "unknown"
    intended_use: str = ""
    source: SourceSpec
    entity_key: str
    # The JSON schema (`dg check yaml`) admits every declared form; _event_time_forms turns it
    # into the column name before validation.
    event_timestamp: Annotated[
        str,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string"},
                    {"type": "object", "properties": {k: {} for k in EventTimeSpec.model_fields}},
                    {"type": "null"},
                ]
            }
        ),
    ] = Field(
        default=NO_EVENT_TIME_COLUMN,
        description="The event time column the graph uses (a UTC timestamp after ingest); "
        f"'{NO_EVENT_TIME_COLUMN}' when the spec declares none.",
    )
    event_time: EventTimeSpec | None = Field(
        default=None,
        description="Set from a mapping form of 'event_timestamp': how to convert the column.",
    )
    label: str
    positive_label: str | int | float | bool | None = Field(
        default=None,
        description="Binary classification: the label value that is the positive class (1); "
        "required when the label is not 0/1 or boolean.",
    )
    task: Task
    features: FeaturesSpec
    model: ModelSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    slices: list[str] = Field(default_factory=list, description="Categorical columns to slice by.")
    contract: str | None = Field(
        default=None, description="Data contract file, relative to the spec's folder."
    )
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    seed: int = 42
    spec_dir: str | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError(f"'{value}' must be lower_snake_case (letters, digits, underscores)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _event_time_forms(cls, data: Any) -> Any:
        return _event_time_input(data)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Defaults of the keys added for issue 17 are left out, so a spec that does not use
        # them dumps (and hashes) exactly as before.
        data = handler(self)
        for key in ("event_time", "positive_label"):
            if data.get(key) is None:
                data.pop(key, None)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        if not self.features.all_columns:
            raise ValueError("'features' declares no feature at all")
        if self.event_time is not None and self.event_time.column != self.event_timestamp:
            raise ValueError(
                f"event_time.column '{self.event_time.column}' differs from event_timestamp "
                f"'{self.event_timestamp}'"
            )
        if not self.has_event_time:
            self._no_event_time()
        if self.positive_label is not None and not self.is_classification:
            fix = (
                "Fix: remove positive_label; every label value is a class of its own"
                if self.is_multiclass
                else "Fix: remove positive_label, or declare task: binary_classification"
            )
            raise ValueError(
                f"positive_label {self.positive_label!r} is only for binary_classification; "
                f"task is '{self.task}'. {fix}"
            )
        reserved = {self.entity_key, self.event_timestamp, self.label}
        clash = reserved & set(self.features.numeric + self.features.categorical)
        if clash:
            raise ValueError(f"features {sorted(clash)} are the entity key, timestamp or label")
        self._dates_consistent()
        unknown = set(self.slices) - set(self.features.categorical)
        if unknown:
            raise ValueError(f"slices {sorted(unknown)} are not categorical features")
        return self

    def _dates_consistent(self) -> None:
        declared = set(self.features.numeric + self.features.categorical)
        columns = [d.column for d in self.features.dates]
        for date in self.features.dates:
            if columns.count(date.column) > 1:
                raise ValueError(f"features.dates declares column '{date.column}' twice")
            if date.column in declared:
                raise ValueError(
                    f"'{date.column}' is declared under features.dates and as a numeric or "
                    f"categorical feature; a date is used through its parts and age. Fix: "
                    f"remove it from features.numeric / features.categorical"
                )
            if date.column in (self.entity_key, self.label):
                raise ValueError(f"features.dates column '{date.column}' is the key or label")
            if date.age_days and not self.has_event_time:
                raise ValueError(
                    f"date feature '{date.column}' asks for age_days, the days from it to "
                    f"each row's event time, and this spec declares no event_timestamp. Fix: "
                    f"declare 'event_timestamp', or use parts only (e.g. parts: [year, month])"
                )
            if date.age_days and date.column == self.event_timestamp:
                raise ValueError(
                    f"age_days of the event timestamp '{date.column}' is always 0. Fix: "
                    f"remove age_days (its parts are fine)"
                )
        taken = {self.entity_key, self.event_timestamp, self.label, *declared}
        taken |= {a.name for a in self.features.aggregates} | set(self.features.custom_outputs)
        clash = sorted(taken & set(self.features.date_outputs))
        if clash:
            raise ValueError(
                f"date features would add columns {clash}, names already used by the data or "
                f"other features. Fix: rename those columns upstream"
            )

    def _no_event_time(self) -> None:
        fix = "Fix: declare 'event_timestamp' (see docs/pipeline-spec.md), or remove"
        for agg in self.features.aggregates:
            raise ValueError(
                f"aggregate '{agg.name}' is a per-entity window over event time "
                f"({agg.window}), and this spec declares no event_timestamp, so there is no "
                f"time to window over. {fix} the aggregate"
            )
        if self.features.ttl is not None:
            raise ValueError(
                f"features.ttl '{self.features.ttl}' ages feature rows by event time, and this "
                f"spec declares no event_timestamp. {fix} 'ttl'"
            )

    @property
    def has_event_time(self) -> bool:
        """False when the spec declares no event timestamp: the split is a seeded random one
        and ingest adds the constant ``NO_EVENT_TIME_COLUMN``."""
        return self.event_timestamp != NO_EVENT_TIME_COLUMN

    @property
    def primary_metric(self) -> str:
        if self.gates.champion_metric:
            return self.gates.champion_metric
        if self.is_multiclass:
            return "macro_f1"  # docs/training.md, "Multiclass classification": why
        return "roc_auc" if self.task == "binary_classification" else "rmse"

    @property
    def is_classification(self) -> bool:
        """Binary classification (the label is 0.0/1.0, scores are P(label = 1)). Multiclass
        is ``is_multiclass``; ``is_classifier`` is either."""
        return self.task == "binary_classification"

    @property
    def is_multiclass(self) -> bool:
        """Multiclass classification: scores are a (rows, classes) probability matrix."""
        return self.task == "multiclass_classification"

    @property
    def is_classifier(self) -> bool:
        return self.is_classification or self.is_multiclass

    def source_path(self, home: Path, project_root: Path) -> str:
        raw = os.path.expandvars(self.source.path.replace("{home}", str(home)))
        return raw if os.path.isabs(raw) else str(project_root / raw)

    def contract_path(self) -> Path | None:
        if self.contract is None:
            return None
        return Path(self.spec_dir or ".") / self.contract


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<top level>"
        got = err.get("input")
        got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  key '{key}': {err['msg']}{got_txt}")
    return "\n".join(lines)


def parse_spec(attributes: Any, source: str, spec_dir: Path | None = None) -> PipelineSpec:
    """Validate raw attributes into a spec, or raise SpecError naming file, key and expectation."""
    if not isinstance(attributes, dict):
        kind = type(attributes).__name__
        raise SpecError(f"{source}: 'attributes' must be a mapping, got {kind}")
    data = dict(attributes)
    if spec_dir is not None:
        data["spec_dir"] = str(spec_dir)
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"invalid pipeline spec {source}:\n{_format_errors(exc)}") from None


def load_spec_file(path: Path) -> PipelineSpec:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or "attributes" not in doc:
        raise SpecError(f"{path}: expected a mapping with 'type' and 'attributes'")
    return parse_spec(doc["attributes"], str(path), spec_dir=path.parent)


def discover_spec_files(defs_root: Path) -> list[Path]:
    """Every defs.yaml under ``defs_root`` whose component type is the ML pipeline."""
    found = []
    for path in sorted(defs_root.rglob("defs.yaml")):
        text = path.read_text()
        if COMPONENT_TYPE in text:
            found.append(path)
    return found


def load_all_specs(defs_root: Path) -> dict[str, PipelineSpec]:
    specs: dict[str, PipelineSpec] = {}
    for path in discover_spec_files(defs_root):
        spec = load_spec_file(path)
        if spec.name in specs:
            raise SpecError(f"{path}: pipeline name '{spec.name}' is declared twice")
        specs[spec.name] = spec
    return specs
