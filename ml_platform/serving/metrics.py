"""Prometheus metrics of the service, on a registry of its own (one per app, so two apps in
one process, as in the tests, do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
