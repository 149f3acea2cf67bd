"""Online serving (issue 15): `mlflow models serve` against `ml-platform serve`, the same
champion, the same payload, the same number of server workers. Targets: (b) throughput >= 3x
(a); (d) throughput >= 2x (a); (d) p99 <= half of (a)'s p99 at the same offered rate.

Method, fixed before any result was seen:
- Champion: the demo pipeline trained at test size in a fresh temporary home, as the serving
  tests' fixture trains it (``ml_platform_tests.helpers``: ``land(SMALL)``, 6,000 events over
  40 days, seed 11; ``materialize(small_spec(n_trials=1))``: HistGradientBoosting with
  ``max_iter`` 30, 13 features), on real local backends (Feast online store loaded, MLflow
  registry with ``@champion`` = v1). For (d) a second registered version of the same artifact
  is the challenger, and a shadow rollout of v1 vs v2 is recorded before (d) starts, so the
  challenger scores every request in the shadow thread (same feature service: it reuses the
  champion's feature vectors) and both arms go to the prediction log.
- Payload: one row per request, the same row for every request: the lowest entity key of the
  feature table and its newest row's 13 feature values (numpy scalars as JSON numbers, text
  categories). (a) ``POST /invocations`` with ``{"dataframe_split": {"columns": [the fitted
  pipeline's feature_names_in_], "data": [[values]]}}``; (b) ``POST
  /v1/pipelines/loan_default/predict`` with ``{"rows": [{"customer_id": k, <13 features>}]}``;
  (c) and (d) the same route with ``{"rows": [{"customer_id": k}]}`` (features from the online
  store). Each service's answer to the payload is checked to be 200 before measuring.
- Services, one at a time, each alone on the port, one worker each, on 127.0.0.1:
  (a) ``mlflow models serve -m models:/loan_default@champion --env-manager local -w 1``
  (MLFLOW_TRACKING_URI = the home's registry); (b), (c) ``ml-platform serve loan_default
  --workers 1 --no-prediction-log``; (d) ``ml-platform serve loan_default --workers 1`` (log on)
  with the shadow rollout. Every service gets OMP_NUM_THREADS = OPENBLAS_NUM_THREADS =
  MKL_NUM_THREADS = 1 (ours sets these itself; giving them to mlflow too can only help it).
  Ready = the payload answers 200; then 200 sequential warm-up requests, untimed.
- Throughput at a fixed concurrency: ``wrk -t1 -c8 -d20s --latency`` with a Lua script that
  POSTs the payload (wrk from Debian: ``apt-get install wrk``); statistic: wrk's Requests/sec;
  its non-2xx count and socket errors are reported and must be 0 for a valid figure. wrk's own
  latency percentiles at c=8 are context only (closed loop).
- Latency at a fixed offered rate: wrk has no rate option, and neither wrk2 nor hey is in
  Debian's packages, so an open-loop generator written here (Python asyncio + aiohttp, one
  process, connection pool up to 256): request i is due at t0 + i/R and is sent then whatever
  the earlier ones did; its latency runs from when it was due (not when it was sent) to the
  end of its response, so a generator or server falling behind shows in the latency (as wrk2
  corrects coordinated omission). 22 s at rate R, the first 2 s discarded; statistic: p50 and
  p99 of the rest (nearest-rank), failures (non-200, timeouts at 10 s) counted and reported. R
  is the same for all four services: half of (a)'s wrk throughput measured just before (so the
  baseline runs at half its capacity), rounded down to 5 req/s, at least 5. The achieved send
  rate is reported: if the generator could not send at R, the figure is marked invalid.
- Order: (a), (b), (c), (d); for each: start, ready, warm-up, throughput, fixed rate, stop.
  One run (the machine is shared: a pipeline benchmark and tests run at the same time); the
  1-minute load average is recorded at the start and end of each measurement and reported.
- Where the time goes (recorded for every service, reported when a target is missed): the
  server processes' CPU seconds (process + children, psutil) during the wrk phase divided by
  the requests served = CPU ms per request; for ours also the server-side latency
  (``ml_platform_serving_request_seconds`` sum/count from ``/metrics``) and the model+features
  time (``ml_platform_serving_scoring_seconds``, champion arm) over the same phase.
- Ratios: throughput (b)/(a), (c)/(a), (d)/(a); p99 (d)/(a). Targets judged on these.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PIPELINE = "loan_default"
CONCURRENCY = 8
WRK_SECONDS = 20
RATE_SECONDS, RATE_DISCARD = 22.0, 2.0
WARMUP = 200
READY_SECONDS = 300
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SERVICES = ("a", "b", "c", "d")
NAMES = {
    "a": "(a) mlflow models serve, features in the request",
    "b": "(b) ml-platform serve, features in the request",
    "c": "(c) ml-platform serve, features from the online store",
    "d": "(d) as (c) + shadow challenger + prediction log",
}
BIN = Path(sys.executable).parent


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the champion -------------------------------------------------------------------------


def train(root: Path) -> dict[str, Any]:
    """The demo at test size in a fresh home; a challenger (same artifact) registered."""
    os.environ.update(
        {
            "ML_PLATFORM_HOME": str(root),
            "DAGSTER_HOME": str(root / "dagster"),
            "FEAST_USAGE": "False",
        }
    )
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from mlflow import MlflowClient

    from ml_platform.home import PlatformHome
    from ml_platform.ingest.datagen import land
    from ml_platform_tests.helpers import SMALL, materialize, small_spec

    home = PlatformHome(root).ensure()
    land(SMALL, home.landing / PIPELINE)
    started = time.perf_counter()
    result = materialize(small_spec(n_trials=1), home)
    if not result.success:
        raise RuntimeError("the benchmark's champion could not be trained")
    client = MlflowClient(tracking_uri=home.tracking_uri, registry_uri=home.tracking_uri)
    champion = client.get_model_version_by_alias(PIPELINE, "champion")
    mv = client.create_model_version(
        PIPELINE, str(champion.source), run_id=champion.run_id, tags=champion.tags
    )
    client.set_registered_model_alias(PIPELINE, "challenger", str(mv.version))
    return {
        "home": home,
        "champion": str(champion.version),
        "challenger": str(mv.version),
        "train_s": time.perf_counter() - started,
    }


def payloads(home: Any) -> dict[str, bytes]:
    import mlflow
    import mlflow.sklearn
    import pandas as pd

    mlflow.set_tracking_uri(home.tracking_uri)
    mlflow.set_registry_uri(home.tracking_uri)
    model = mlflow.sklearn.load_model(f"models:/{PIPELINE}@champion")
    columns = [str(c) for c in model.feature_names_in_]
    features = pd.read_parquet(home.pipeline_dir(PIPELINE) / "features.parquet")
    key = int(features["customer_id"].min())
    row = features[features["customer_id"] == key].sort_values("applied_at").iloc[-1]
    values = [v.item() if hasattr(v, "item") else v for v in (row[c] for c in columns)]
    full = {"customer_id": key, **dict(zip(columns, values, strict=True))}
    return {
        "a": json.dumps({"dataframe_split": {"columns": columns, "data": [values]}}).encode(),
        "b": json.dumps({"rows": [full]}).encode(),
        "c": json.dumps({"rows": [{"customer_id": key}]}).encode(),
        "d": json.dumps({"rows": [{"customer_id": key}]}).encode(),
    }


# --- services -----------------------------------------------------------------------------


def start(service: str, home: Any, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **THREADS}
    if service == "a":
        env["MLFLOW_TRACKING_URI"] = home.tracking_uri
        cmd = [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{PIPELINE}@champion",
            "--env-manager",
            "local",
            "-w",
            "1",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]
    else:
        cmd = [str(BIN / "ml-platform"), "serve", PIPELINE, "--port", str(port), "--workers", "1"]
        if service in ("b", "c"):
            cmd.append("--no-prediction-log")
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def path_of(service: str) -> str:
    return "/invocations" if service == "a" else f"/v1/pipelines/{PIPELINE}/predict"


def wait_ready(
    service: str, url: str, body: bytes, proc: subprocess.Popen[bytes], log: Path, want: str
) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + READY_SECONDS
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{service} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            r = httpx.post(
                url + path_of(service),
                content=body,
                headers={"content-type": "application/json"},
                timeout=10,
            )
            last = f"{r.status_code} {r.text[:300]}"
            if r.status_code == 200:
                if service == "d":  # the shadow rollout must be served
                    models = httpx.get(f"{url}/v1/pipelines/{PIPELINE}/models", timeout=10).json()
                    if (models.get("rollout") or {}).get("mode") != "shadow":
                        time.sleep(0.5)
                        continue
                return {"answer": r.text[:300]}
        except httpx.TransportError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{service} not ready in {READY_SECONDS}s ({want}): {last}")


def cpu_seconds(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def scrape(url: str) -> dict[str, float]:
    """Sums over label sets of our request and champion scoring histograms."""
    import httpx

    out = {"request_sum": 0.0, "request_count": 0.0, "scoring_sum": 0.0, "scoring_count": 0.0}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        for metric, prefix in (
            ("request", "ml_platform_serving_request_seconds"),
            ("scoring", "ml_platform_serving_scoring_seconds"),
        ):
            if metric == "scoring" and 'arm="champion"' not in name:
                continue
            for stat in ("sum", "count"):
                if name.startswith(f"{prefix}_{stat}{{"):
                    out[f"{metric}_{stat}"] += float(value)
    return out


# --- load ---------------------------------------------------------------------------------


def run_wrk(url: str, body: bytes, workdir: Path) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONCURRENCY}",
            f"-d{WRK_SECONDS}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=WRK_SECONDS + 60,
        check=True,
    ).stdout
    result: dict[str, Any] = {"raw": out, "non_2xx": 0, "socket_errors": ""}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            result["rps"] = float(s.split()[1])
        elif s.startswith("Non-2xx or 3xx responses:"):
            result["non_2xx"] = int(s.split()[-1])
        elif s.startswith("Socket errors:"):
            result["socket_errors"] = s
        elif "requests in" in s:
            result["requests"] = int(s.split()[0])
        elif s.startswith(("50%", "99%")):
            result[f"wrk_{s.split()[0][:-1]}"] = s.split()[1]
    return result


async def _fixed_rate(url: str, body: bytes, rate: float) -> dict[str, Any]:
    import aiohttp

    n = int(RATE_SECONDS * rate)
    latencies: list[tuple[float, float]] = []  # (due offset, seconds)
    failures: dict[str, int] = {}
    late = 0
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=10)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(due: float, offset: float) -> None:
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        failures[str(r.status)] = failures.get(str(r.status), 0) + 1
                        return
            except (TimeoutError, aiohttp.ClientError) as exc:
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                return
            latencies.append((offset, time.perf_counter() - due))

        tasks = []
        t0 = time.perf_counter() + 0.2
        for i in range(n):
            due = t0 + i / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            elif -wait > 0.005:
                late += 1
            tasks.append(asyncio.create_task(one(due, i / rate)))
        sent_s = time.perf_counter() - t0
        await asyncio.gather(*tasks)
    kept = sorted(s for off, s in latencies if off >= RATE_DISCARD)

    def pct(q: float) -> float:
        return kept[max(0, int(q * len(kept) + 0.999999) - 1)] * 1000 if kept else float("nan")

    return {
        "rate": rate,
        "sent": n,
        "achieved_rate": n / sent_s if sent_s > 0 else float("nan"),
        "late_sends": late,
        "measured": len(kept),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "failures": failures,
    }


def fixed_rate(url: str, body: bytes, rate: float) -> dict[str, Any]:
    return asyncio.run(_fixed_rate(url, body, rate))


def measure(
    service: str, home: Any, body: bytes, workdir: Path, rate: float | None
) -> dict[str, Any]:
    """One service: start, ready, warm-up, wrk, fixed rate (``rate``; None: decided from this
    service's wrk figure, for (a)), stop."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / f"server_{service}.log"
    out: dict[str, Any] = {"service": service}
    started = time.perf_counter()
    proc = start(service, home, port, log)
    try:
        out["ready"] = wait_ready(service, url, body, proc, log, NAMES[service])
        out["startup_s"] = time.perf_counter() - started
        with httpx.Client(timeout=10) as client:
            for _ in range(WARMUP):
                client.post(
                    url + path_of(service),
                    content=body,
                    headers={"content-type": "application/json"},
                ).raise_for_status()
        ours = service != "a"
        before = scrape(url) if ours else {}
        cpu0, load0 = cpu_seconds(proc.pid), _load()
        out["wrk"] = run_wrk(url + path_of(service), body, workdir)
        cpu1, load1 = cpu_seconds(proc.pid), _load()
        after = scrape(url) if ours else {}
        out["load_wrk"] = (load0, load1)
        served = out["wrk"].get("requests", 0)
        out["cpu_ms_per_request"] = (cpu1 - cpu0) / served * 1000 if served else float("nan")
        if ours:
            dreq = after["request_count"] - before["request_count"]
            dsc = after["scoring_count"] - before["scoring_count"]
            out["server_ms"] = (
                (after["request_sum"] - before["request_sum"]) / dreq * 1000 if dreq else None
            )
            out["scoring_ms"] = (
                (after["scoring_sum"] - before["scoring_sum"]) / dsc * 1000 if dsc else None
            )
        if rate is None:
            rate = max(5.0, (out["wrk"]["rps"] / 2) // 5 * 5)
        load2 = _load()
        out["fixed"] = fixed_rate(url + path_of(service), body, rate)
        out["load_fixed"] = (load2, _load())
        if service == "d":
            models = httpx.get(f"{url}/v1/pipelines/{PIPELINE}/models", timeout=10).json()
            out["rollout"] = models.get("rollout")
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            out["shadow_errors"] = [
                line
                for line in metrics.splitlines()
                if line.startswith("ml_platform_serving_challenger_errors_total{")
            ]
    finally:
        stop(proc)
    return out


# --- the report ---------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def report(trained: dict[str, Any], results: dict[str, dict[str, Any]], rate: float) -> str:
    thr = {s: results[s]["wrk"].get("rps", float("nan")) for s in SERVICES}
    p99 = {s: results[s]["fixed"]["p99_ms"] for s in SERVICES}
    rows = []
    for s in SERVICES:
        r = results[s]
        w, f = r["wrk"], r["fixed"]
        fails = ", ".join(f"{k} {v}" for k, v in f["failures"].items()) or "0"
        rows.append(
            f"| {NAMES[s]} | {w.get('rps', float('nan')):,.1f} | {w['non_2xx']}"
            f"{' / ' + w['socket_errors'] if w['socket_errors'] else ''} | "
            f"{f['p50_ms']:.1f} | {f['p99_ms']:.1f} | {f['achieved_rate']:.1f} "
            f"({f['late_sends']} late) | {fails} | "
            f"{r['load_wrk'][0]:.1f}-{r['load_wrk'][1]:.1f} / "
            f"{r['load_fixed'][0]:.1f}-{r['load_fixed'][1]:.1f} |"
        )
    where = []
    for s in SERVICES:
        r = results[s]
        extra = ""
        if s != "a" and r.get("server_ms") is not None:
            extra = (
                f"; server-side request {r['server_ms']:.2f} ms, of which features + model "
                f"(champion) {r['scoring_ms']:.2f} ms"
                if r.get("scoring_ms") is not None
                else f"; server-side request {r['server_ms']:.2f} ms"
            )
        where.append(
            f"- {NAMES[s]}: server CPU {r['cpu_ms_per_request']:.2f} ms per request under wrk"
            f"{extra}; wrk's closed-loop p50/p99 at c={CONCURRENCY}: "
            f"{r['wrk'].get('wrk_50', '?')} / {r['wrk'].get('wrk_99', '?')}; started in "
            f"{r['startup_s']:.0f} s"
        )
    ratio_b, ratio_c, ratio_d = thr["b"] / thr["a"], thr["c"] / thr["a"], thr["d"] / thr["a"]
    ratio_p99 = p99["d"] / p99["a"]
    invalid = [
        NAMES[s]
        for s in SERVICES
        if results[s]["wrk"]["non_2xx"]
        or results[s]["fixed"]["failures"]
        or results[s]["fixed"]["achieved_rate"] < 0.95 * rate
    ]
    d = results["d"]
    lines = [
        "## Online serving (issue 15)",
        "",
        "`mlflow models serve` against `ml-platform serve` on the same champion (the demo at "
        f"test size: HistGradientBoosting, 13 features; trained here in {trained['train_s']:.0f}"
        " s), the same one-row payload, one server worker each, one service at a time; "
        f"throughput with wrk at {CONCURRENCY} connections for {WRK_SECONDS} s, latency at a "
        f"fixed offered rate of **{rate:g} req/s** (half of (a)'s throughput) with an open-loop "
        "generator written here in Python (asyncio + aiohttp: wrk has no rate option and "
        "neither wrk2 nor hey is packaged in Debian); latency counted from when a request was "
        f"due, {RATE_SECONDS - RATE_DISCARD:g} s measured after {RATE_DISCARD:g} s discarded. "
        "One run; method in `benchmarks/bench_serving.py`.",
        "",
        "| service | req/s at c=8 | non-2xx | p50 ms at fixed rate | p99 ms at fixed rate | "
        "achieved rate | failures | load avg (wrk / fixed rate) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Throughput ratios: (b)/(a) = **{ratio_b:.2f}x** (target >= 3x: "
        f"{_verdict(ratio_b >= 3)}); (c)/(a) = {ratio_c:.2f}x; (d)/(a) = **{ratio_d:.2f}x** "
        f"(target >= 2x: {_verdict(ratio_d >= 2)}). p99 at {rate:g} req/s: (d)/(a) = "
        f"**{ratio_p99:.2f}** (target <= 0.5: {_verdict(ratio_p99 <= 0.5)}).",
        "",
        f"Shadow in (d): rollout {(d.get('rollout') or {}).get('mode')} of champion v"
        f"{trained['champion']} vs challenger v{trained['challenger']}; challenger errors: "
        f"{'; '.join(d.get('shadow_errors') or []) or 'none'}.",
        "",
        "Where the time goes (same wrk phase):",
        "",
        *where,
        "",
        "Load: the 1-minute load average at the start and end of each measurement is in the "
        "table (2 cores). Other work (a pipeline benchmark at high priority and tests) ran "
        "on this machine during the whole run, so absolute figures are low and noisy; the "
        "four services were measured one after another, not interleaved, so the load each "
        "saw differs (compare the load columns before reading the ratios).",
    ]
    if invalid:
        lines += ["", f"Figures with failures or a rate not reached: {', '.join(invalid)}."]
    return "\n".join(lines)


def run() -> str:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk (Debian's package)")
    workdir = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    try:
        trained = train(workdir / "home")
        home = trained["home"]
        bodies = payloads(home)
        results: dict[str, dict[str, Any]] = {}
        rate: float | None = None
        for service in SERVICES:
            if service == "d":
                from ml_platform.serving.rollout import RolloutStore

                RolloutStore(home, PIPELINE).start(
                    "shadow", 0.1, trained["champion"], trained["challenger"], "benchmark"
                )
            print(f"-- {NAMES[service]} (load {_load()})", flush=True)
            results[service] = measure(service, home, bodies[service], workdir, rate)
            if rate is None:
                rate = results[service]["fixed"]["rate"]
            print(
                json.dumps({k: v for k, v in results[service].items() if k != "wrk"}, default=str),
                flush=True,
            )
        assert rate is not None
        return report(trained, results, rate)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
