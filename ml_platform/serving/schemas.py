"""Request and response bodies. The row model is built per pipeline from its spec and feature
types, so the OpenAPI schema names every field a row may carry and its type; unknown fields,
NaN and infinity, empty and oversized batches are rejected before any scoring."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

MAX_BATCH = 1_000  # rows per request
MAX_STRING = 200  # characters of a categorical value

_Strict = ConfigDict(extra="forbid", allow_inf_nan=False)


def _not_text(value: Any) -> Any:
    # JSON Schema's integer includes 7.0 (pydantic takes it) but not "7" or true (pydantic's
    # lax mode would).
    if isinstance(value, str | bool):
        raise ValueError("must be an integer, not text or a boolean")
    return value


# Any text (pydantic refuses JSON's lone surrogate escapes: not Unicode); an unseen category
# is scored as the pipeline scores unseen values.
Text = Annotated[str, Field(max_length=MAX_STRING)]
# Strict: JSON numbers only (a lax float takes false as 0.0 and "9\t" as 9.0; schemathesis
# sent both).
Number = Annotated[float, Field(allow_inf_nan=False, strict=True)]
# The feature store keys integers as int64; a key beyond it is an entity the store cannot know
# (a 404 from the service). Not a schema bound: clients reading JSON numbers as doubles
# (schemathesis did) cannot compare integers near 2**63 exactly.
Int64Key = Annotated[int, BeforeValidator(_not_text)]


def row_model(
    pipeline: str, entity_key: str, entity_dtype: str, features: dict[str, str]
) -> type[BaseModel]:
    """``features``: feature name -> "int64" | "float64" | "bool" | "string". Every feature is
    optional: what a row does not give is read from the online store."""
    key_type: Any = Int64Key if entity_dtype == "int64" else Text
    fields: dict[str, Any] = {
        entity_key: (key_type, Field(description="The entity key (required)."))
    }
    for name, dtype in features.items():
        typ: Any = Text if dtype == "string" else Number
        fields[name] = (
            typ | None,
            Field(
                default=None,
                description=f"Request-time value of '{name}' ({dtype}); "
                "omitted or null: read from the online store.",
            ),
        )
    title = "".join(part.title() for part in pipeline.split("_"))
    return create_model(f"{title}Row", __config__=_Strict, **fields)


def request_model(pipeline: str, row: type[BaseModel]) -> type[BaseModel]:
    title = "".join(part.title() for part in pipeline.split("_"))
    return create_model(
        f"{title}PredictRequest",
        __config__=_Strict,
        rows=(list[row], Field(min_length=1, max_length=MAX_BATCH)),  # type: ignore[valid-type]
    )


class Prediction(BaseModel):
    row: int = Field(description="Index of the row in the request.")
    entity: int | str
    score: float = Field(
        description="P(label = 1) for a binary classifier; multiclass: the probability of the "
        "predicted class (`label`); the prediction otherwise."
    )
    label: int | None = Field(
        description="Binary classifiers: score >= the spec's serving.threshold (default 0.5); "
        "multiclass: the most probable class; else null."
    )
    probabilities: dict[str, float] | None = Field(
        default=None,
        description="Multiclass only: every class's probability, keyed by the class value.",
    )
    model_version: str = Field(description="The registry version that scored this row.")
    arm: Literal["champion", "challenger"] = Field(
        description="Which model answered: 'challenger' only for the rows of an A/B rollout's "
        "challenger arm (in shadow the caller always gets the champion)."
    )
    request_id: str


class PredictResponse(BaseModel):
    pipeline: str
    request_id: str
    predictions: list[Prediction]


class Problem(BaseModel):
    field: str
    problem: str


class ErrorResponse(BaseModel):
    error: str
    detail: str
    problems: list[Problem] = Field(default_factory=list)


class ServedVersion(BaseModel):
    alias: str
    version: str
    run_id: str
    feature_service: str | None
    loaded_at: float
    numpy_path: bool = Field(description="Scored without pandas (false: the DataFrame fallback).")


class RolloutStatus(BaseModel):
    mode: Literal["off", "shadow", "ab"] = Field(
        description="The mode being served: 'off' when no rollout is recorded or it cannot run."
    )
    recorded_mode: Literal["off", "shadow", "ab"] = Field(
        description="The active rollout's mode in the rollout store ('off': none)."
    )
    id: int | None
    traffic_share: float | None = Field(description="A/B: the challenger's share of entities.")
    champion_version: str | None
    challenger_version: str | None
    started_at: str | None
    started_by: str | None
    problem: str | None = Field(
        description="Why a recorded rollout is not running here (its versions are not the "
        "ones loaded); the champion then answers alone."
    )


class ModelsResponse(BaseModel):
    pipeline: str
    champion: ServedVersion | None
    challenger: ServedVersion | None
    rollout: RolloutStatus
    errors: dict[str, str] = Field(description="Alias -> the last load error, while it lasts.")
