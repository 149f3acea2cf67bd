"""The API against the real app on the test champion (FastAPI's TestClient runs its lifespan:
the models load from the registry, features come from the Feast online store): predictions,
the models, health and metrics endpoints, and every kind of bad input, each with its status
and the message naming the field and the problem."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ml_platform.serving.app import create_app
from ml_platform.serving.schemas import MAX_BATCH
from ml_platform_tests.serving.conftest import PIPELINE, Champion

PREDICT = f"/v1/pipelines/{PIPELINE}/predict"


@pytest.fixture(scope="module")
def client(champion: Champion) -> Iterator[TestClient]:
    with TestClient(create_app([champion.spec], champion.home)) as c:
        yield c


def _post(client: TestClient, body: Any) -> tuple[int, dict[str, Any]]:
    r = client.post(PREDICT, json=body)
    return r.status_code, r.json()


def test_predicts_known_entities_from_online_features(
    client: TestClient, champion: Champion
) -> None:
    keys = champion.known_keys[:5]
    status, body = _post(client, {"rows": [{"customer_id": k} for k in keys]})
    assert status == 200, body
    preds = body["predictions"]
    assert [p["entity"] for p in preds] == keys
    assert [p["row"] for p in preds] == list(range(5))
    for p in preds:
        assert 0.0 <= p["score"] <= 1.0
        assert p["label"] == int(p["score"] >= 0.5)
        assert p["arm"] == "champion"
        assert p["model_version"] == "1"
        assert p["request_id"] == body["request_id"]


def test_scores_equal_the_pipeline_on_the_online_row(
    client: TestClient, champion: Champion
) -> None:
    """The served score is the fitted pipeline's score of the entity's newest feature row."""
    from ml_platform.training.fitting import features_of
    from ml_platform_tests.serving.test_parity import _pipeline

    features = champion.features.sort_values("applied_at").groupby("customer_id").tail(1)
    sample = features.set_index("customer_id").loc[champion.known_keys[:20]].reset_index()
    expected = _pipeline(champion).predict_proba(features_of(sample, champion.spec))[:, 1]
    status, body = _post(client, {"rows": [{"customer_id": k} for k in champion.known_keys[:20]]})
    assert status == 200, body
    got = [p["score"] for p in body["predictions"]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_request_values_override_online_values(client: TestClient, champion: Champion) -> None:
    key = champion.known_keys[0]
    _, plain = _post(client, {"rows": [{"customer_id": key}]})
    _, given = _post(
        client,
        {
            "rows": [
                {
                    "customer_id": key,
                    "credit_score": 300.0,
                    "amount": 90_000.0,
                    "purpose": "business",
                }
            ]
        },
    )
    assert plain["predictions"][0]["score"] != given["predictions"][0]["score"]


def test_a_row_with_every_feature_needs_no_online_row(client: TestClient) -> None:
    row = {
        "customer_id": 987_654_321,
        "amount": 5000.0,
        "term_months": 36,
        "annual_income": 60_000.0,
        "credit_score": 700,
        "employment_years": 3.0,
        "apps_7d": 1,
        "apps_30d": 1,
        "amount_sum_30d": 5000.0,
        "amount_mean_90d": 5000.0,
        "amount_max_90d": 5000.0,
        "purpose": "car",
        "region": "north",
        "channel": "web",
    }
    status, body = _post(client, {"rows": [row]})
    assert status == 200, body


def test_request_id_header_is_used(client: TestClient, champion: Champion) -> None:
    r = client.post(
        PREDICT,
        json={"rows": [{"customer_id": champion.known_keys[0]}]},
        headers={"X-Request-ID": "abc-123"},
    )
    assert r.json()["predictions"][0]["request_id"] == "abc-123"


BAD = [
    # (what, body, status, field, words in the problem)
    ("empty batch", {"rows": []}, 422, "rows", "at least 1"),
    (
        "oversized batch",
        {"rows": [{"customer_id": 1}] * (MAX_BATCH + 1)},
        422,
        "rows",
        f"at most {MAX_BATCH}",
    ),
    ("no rows field", {}, 422, "rows", "required field is missing"),
    (
        "number as boolean",
        {"rows": [{"customer_id": 1, "amount": False}]},
        422,
        "rows[0].amount",
        "",
    ),
    ("number as text", {"rows": [{"customer_id": 1, "amount": "9"}]}, 422, "rows[0].amount", ""),
    ("unknown top-level field", {"rows": [{"customer_id": 1}], "x": 1}, 422, "x", "unknown field"),
    (
        "missing entity key",
        {"rows": [{"amount": 1.0}]},
        422,
        "rows[0].customer_id",
        "required field is missing",
    ),
    (
        "unknown row field",
        {"rows": [{"customer_id": 1, "colour": "red"}]},
        422,
        "rows[0].colour",
        "unknown field",
    ),
    (
        "entity key as text",
        {"rows": [{"customer_id": "7"}]},
        422,
        "rows[0].customer_id",
        "must be an integer, not text",
    ),
    (
        "entity key fractional",
        {"rows": [{"customer_id": 7.5}]},
        422,
        "rows[0].customer_id",
        "fractional part",
    ),
    (
        "number as text",
        {"rows": [{"customer_id": 1, "amount": "lots"}]},
        422,
        "rows[0].amount",
        "valid number",
    ),
    (
        "category as number",
        {"rows": [{"customer_id": 1, "purpose": 3}]},
        422,
        "rows[0].purpose",
        "valid string",
    ),
    ("rows not a list", {"rows": {"customer_id": 1}}, 422, "rows", "valid list"),
    ("row not an object", {"rows": [5]}, 422, "rows[0]", "valid dictionary"),
    (
        "unknown entity",
        {"rows": [{"customer_id": 1}, {"customer_id": 999_999_999}]},
        404,
        "rows[1].customer_id",
        "999999999 is unknown to the online store",
    ),
]


@pytest.mark.parametrize(("what", "body", "status", "field", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_naming_field_and_problem(
    client: TestClient, what: str, body: Any, status: int, field: str, words: str
) -> None:
    got, answer = _post(client, body)
    assert got == status, answer
    assert any(p["field"] == field and words in p["problem"] for p in answer["problems"]), answer
    assert field in answer["detail"] or status == 404


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_rejected(client: TestClient, literal: bytes) -> None:
    body = b'{"rows": [{"customer_id": 1, "amount": ' + literal + b"}]}"
    r = client.post(PREDICT, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["problems"] == [
        {
            "field": "rows[0].amount",
            "problem": "must be a finite number (NaN and infinity are not accepted)",
        }
    ]


def test_malformed_json_is_a_400(client: TestClient) -> None:
    r = client.post(PREDICT, content=b'{"rows": [', headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_json"
    assert r.json()["problems"][0]["field"] == "body"


def test_body_not_utf8_is_a_400(client: TestClient) -> None:
    """Found by schemathesis: FastAPI's own 400 had another shape than the schema's."""
    r = client.post(PREDICT, content=b"\xff", headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_json"
    assert r.json()["problems"][0]["field"] == "body"


def test_unknown_pipeline_is_a_404_naming_it(client: TestClient) -> None:
    r = client.post("/v1/pipelines/churn/predict", json={"rows": [{"customer_id": 1}]})
    assert r.status_code == 404
    assert "'churn' is not served" in r.json()["detail"]


def test_expired_online_features_are_a_404(champion: Champion) -> None:
    """Feast returns rows however old (feast#6821): the service applies the spec's TTL. With a
    TTL ending between the oldest and newest online rows, old entities are refused, fresh ones
    scored."""
    newest = champion.features.sort_values("applied_at").groupby("customer_id").tail(1)
    stamps = newest.set_index("customer_id")["applied_at"]
    cut = stamps.quantile(0.5)
    days = int((time.time() - cut.timestamp()) // 86_400)
    spec = champion.spec.model_copy(
        update={"features": champion.spec.features.model_copy(update={"ttl": f"{days}d"})}
    )
    oldest = time.time() - days * 86_400
    stale = int(stamps[stamps.map(lambda t: t.timestamp()) < oldest - 3600].index[0])
    fresh = int(stamps[stamps.map(lambda t: t.timestamp()) > oldest + 3600].index[0])
    with TestClient(create_app([spec], champion.home)) as c:
        ok = c.post(PREDICT, json={"rows": [{"customer_id": fresh}]})
        assert ok.status_code == 200, ok.text
        r = c.post(PREDICT, json={"rows": [{"customer_id": fresh}, {"customer_id": stale}]})
    assert r.status_code == 404, r.text
    [problem] = r.json()["problems"]
    assert problem["field"] == "rows[1].customer_id"
    assert f"older than the ttl {days}d" in problem["problem"]


def test_models_health_ready(client: TestClient) -> None:
    models = client.get(f"/v1/pipelines/{PIPELINE}/models").json()
    assert models["champion"]["version"] == "1"
    assert models["champion"]["feature_service"] == "loan_default_v1"
    assert models["champion"]["numpy_path"] is True
    assert models["rollout"]["mode"] == "off" and models["rollout"]["id"] is None
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_metrics_count_requests_errors_and_latency_per_version(
    client: TestClient, champion: Champion
) -> None:
    _post(client, {"rows": [{"customer_id": champion.known_keys[0]}]})
    _post(client, {"rows": []})
    client.post(PREDICT, content=b"{not json", headers={"content-type": "application/json"})
    text = client.get("/metrics").text
    assert (
        'ml_platform_serving_requests_total{model_version="1",pipeline="loan_default",'
        'status="200"}' in text
    )
    for status in (400, 422):  # rejected before the endpoint: counted, with no model version
        assert (
            'ml_platform_serving_requests_total{model_version="none",pipeline="loan_default",'
            f'status="{status}"}}' in text
        )
    assert (
        'ml_platform_serving_errors_total{kind="invalid_request",pipeline="loan_default"}' in text
    )
    assert (
        'ml_platform_serving_request_seconds_bucket{le="0.001",model_version="1",'
        'pipeline="loan_default"}' in text
    )
    assert (
        'ml_platform_serving_model_loads_total{alias="champion",outcome="ok",'
        'pipeline="loan_default"} 1.0' in text
    )


def test_not_ready_without_a_champion(home) -> None:  # noqa: ANN001 - the empty test home
    from ml_platform_tests.helpers import small_spec

    with TestClient(create_app([small_spec()], home)) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert "loan_default" in ready.json()["waiting_for"]
        r = c.post(PREDICT, json={"rows": [{"customer_id": 1}]})
    assert r.status_code == 503
    assert r.json()["error"] == "not_ready"


def test_entity_key_outside_int64_is_unknown(client: TestClient) -> None:
    """Found by schemathesis: Feast raised ValueError (a 500) on a key beyond int64."""
    status, body = _post(client, {"rows": [{"customer_id": 1}, {"customer_id": 2**63}]})
    assert status == 404, body
    assert body["problems"] == [
        {
            "field": "rows[1].customer_id",
            "problem": f"customer_id {2**63} is outside int64: unknown to the online store",
        }
    ]


def test_text_that_is_not_unicode_is_a_422(client: TestClient, champion: Champion) -> None:
    """A lone surrogate escape is JSON but not text: the field is named."""
    raw = b'{"rows": [{"customer_id": %d, "region": "\\ud853"}]}' % champion.known_keys[0]
    r = client.post(PREDICT, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    [problem] = r.json()["problems"]
    assert problem["field"] == "rows[0].region"
    assert "unicode string" in problem["problem"]


def test_unseen_category_is_scored(client: TestClient, champion: Champion) -> None:
    status, body = _post(
        client, {"rows": [{"customer_id": champion.known_keys[0], "region": "mars"}]}
    )
    assert status == 200, body


def test_integral_number_is_an_integer_key(client: TestClient, champion: Champion) -> None:
    """JSON Schema's integer includes 7.0 (schemathesis sent one)."""
    status, body = _post(client, {"rows": [{"customer_id": float(champion.known_keys[0])}]})
    assert status == 200, body
    assert body["predictions"][0]["entity"] == champion.known_keys[0]
