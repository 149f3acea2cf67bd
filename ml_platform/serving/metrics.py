"""Prometheus metrics of the service, on a registry of its own (one per app, so two apps in
one process, as in the tests, do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Request latency buckets in seconds: sub-millisecond to a second.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ml_platform_serving_requests",
            "Prediction requests by pipeline, model version and status code.",
            ["pipeline", "model_version", "status"],
            registry=self.registry,
        )
        self.rows = Counter(
            "ml_platform_serving_rows",
            "Rows scored by pipeline, model version and arm.",
            ["pipeline", "model_version", "arm"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ml_platform_serving_errors",
            "Failed prediction requests by pipeline and error kind.",
            ["pipeline", "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ml_platform_serving_request_seconds",
            "Prediction request latency (server side) by pipeline and model version.",
            ["pipeline", "model_version"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.model_loads = Counter(
            "ml_platform_serving_model_loads",
            "Model loads by pipeline, alias and outcome (ok or failed).",
            ["pipeline", "alias", "outcome"],
            registry=self.registry,
        )
        self.scoring = Histogram(
            "ml_platform_serving_scoring_seconds",
            "Features and model call of one arm's rows of a request, by pipeline, model "
            "version and arm (the shadow challenger's after the response).",
            ["pipeline", "model_version", "arm"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.challenger_errors = Counter(
            "ml_platform_serving_challenger_errors",
            "Challenger failures under a rollout (the champion answered), by pipeline, model "
            "version, rollout mode and error kind.",
            ["pipeline", "model_version", "mode", "kind"],
            registry=self.registry,
        )
        self.rollout = Gauge(
            "ml_platform_serving_rollout_mode",
            "1 for the rollout mode being served (off, shadow or ab), 0 for the others.",
            ["pipeline", "mode"],
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "ml_platform_serving_prediction_log_dropped_rows",
            "Prediction log rows not written, by pipeline and reason (buffer_full, "
            "write_failed, closed).",
            ["pipeline", "reason"],
            registry=self.registry,
        )
