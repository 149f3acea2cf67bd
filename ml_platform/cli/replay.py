"""`ml-platform replay <pipeline> --days N`: send the newest N landed days' rows to a running
service as prediction requests, then their labels as outcomes, then (``--evaluate``) judge the
rollout: the "shadow before promotion" story of docs/serving.md in one bounded command.

1. The rows: the pipeline's feature table (what the online store is loaded from), grouped by
   the UTC day of the event timestamp as the monitoring batches group it; the newest N days.
   Each request row gives the entity key and the row's request-time fields (the spec's
   ``features.numeric`` and ``features.categorical``, as the application carried them); the
   service reads the rest (the aggregates) from the online store. Rows are sent in batches of
   ``--batch-size`` (no entity twice in one request, so each outcome labels one row) at no more
   than ``--rate`` requests a second, each with an ``X-Request-ID`` of this replay.
2. The outcomes: each scored row's label (from the newest validated data, or the spec's late
   label files when it names them, joined as monitoring joins them) with the request id and
   the time of the replay, written to ``<home>/warehouse/<pipeline>/replay/<id>.parquet``
   (temporary name, then renamed) and ingested by ``ml-platform labels`` (the same command
   function), which joins them to the prediction log exactly by request id.
3. ``--evaluate``: ``<pipeline>_online_evaluation_job`` runs in this process on the home's
   Dagster instance with the code location's executor (the path of ``ml-platform run``); its
   verdict and action are printed with the promotion ledger's decisions since the replay began.

Exit codes: 0 done; 1 the service is down, not ready or failed a request, or the evaluation run
failed; 2 bad input (no feature table, no landed day, a service that does not serve the
pipeline).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ml_platform.cli.app import _spec, app, console

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from ml_platform.home import PlatformHome
    from ml_platform.spec import PipelineSpec

MAX_BATCH = 1000  # the service's limit (docs/serving.md)
LOG_WAIT_SECONDS = 15.0  # the service writes its prediction log every second


class ReplayError(Exception):
    """The replay cannot go on; ``code`` is the exit code (1 service, 2 input)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Sent:
    """What the service answered: the scored rows (by request id) and the rows it refused."""

    scored: list[dict[str, Any]] = field(default_factory=list)  # entity, label, request_id
    refused: list[str] = field(default_factory=list)  # "entity: why"
    requests: int = 0
    seconds: float = 0.0


def newest_days(spec: PipelineSpec, frame: pd.DataFrame, days: int) -> pd.DataFrame:
    """The rows of the newest ``days`` UTC days of event time (the monitoring batches' days)."""
    import pandas as pd

    day = pd.to_datetime(frame[spec.event_timestamp], utc=True).dt.strftime("%Y-%m-%d")
    chosen = sorted(set(day))[-days:]
    out = frame[day.isin(chosen)].copy()
    out["_day"] = day[out.index]
    return out.sort_values([spec.event_timestamp], kind="stable").reset_index(drop=True)


def _labels(spec: PipelineSpec, home: PlatformHome, rows: pd.DataFrame) -> pd.Series:
    """The rows' labels, joined on entity key and event time as monitoring joins them
    (``labels_for``): from the spec's late label files when it names them, else from the newest
    validated data (``<home>/warehouse/<pipeline>/validated/``, the last run's)."""
    import pandas as pd

    from ml_platform.monitoring.batches import labels_for

    folder = home.pipeline_dir(spec.name) / "validated"
    validated = sorted((p for p in folder.glob("[!.]*.parquet")), key=lambda p: p.stat().st_mtime)
    if not validated and spec.monitoring.labels is None:
        raise ReplayError(
            f"no validated data in {folder} to read labels from: run `ml-platform run "
            f"{spec.name}` first",
            2,
        )
    found = labels_for(spec, home, rows, validated[-1] if validated else Path(os.devnull))
    return pd.Series(pd.NA, index=rows.index, dtype="object") if found is None else found


def _json_value(value: Any) -> Any:
    """A JSON value for a cell: NaN/NaT/None as null, numpy scalars as Python ones."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def request_rows(spec: PipelineSpec, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Entity key + the request-time fields the table has, as the service's schema wants them
    (categories as text, missing values as null)."""
    numeric = [c for c in spec.features.numeric if c in rows.columns]
    categorical = [c for c in spec.features.categorical if c in rows.columns]
    out = []
    for record in rows[[spec.entity_key, *numeric, *categorical]].to_dict("records"):
        row = {spec.entity_key: _json_value(record[spec.entity_key])}
        for c in numeric:
            row[c] = _json_value(record[c])
        for c in categorical:
            v = _json_value(record[c])
            row[c] = None if v is None else str(v)
        out.append(row)
    return out


def batches(rows: list[dict[str, Any]], key: str, size: int) -> list[list[int]]:
    """Row indices in requests of at most ``size`` rows, no entity twice in one request."""
    out: list[list[int]] = []
    current: list[int] = []
    seen: set[Any] = set()
    for i, row in enumerate(rows):
        if len(current) >= size or row[key] in seen:
            out.append(current)
            current, seen = [], set()
        current.append(i)
        seen.add(row[key])
    if current:
        out.append(current)
    return out


def check_service(client: httpx.Client, url: str, pipeline: str) -> dict[str, Any]:
    """The service answers, is ready and serves ``pipeline``: its ``/models`` document."""
    import httpx

    try:
        ready = client.get(f"{url}/readyz")
    except httpx.TransportError as exc:
        raise ReplayError(
            f"no service answers at {url} ({type(exc).__name__}: {exc}); start one with "
            f"`ml-platform serve {pipeline}` (or pass --url)"
        ) from None
    if ready.status_code != 200:
        raise ReplayError(
            f"the service at {url} is not ready ({ready.status_code}: {ready.text[:300]}); "
            "wait for /readyz to answer 200 (loading takes 10-60 s)"
        )
    models = client.get(f"{url}/v1/pipelines/{pipeline}/models")
    if models.status_code == 404:
        raise ReplayError(
            f"the service at {url} does not serve '{pipeline}' ({models.text[:200]}); start it "
            f"with `ml-platform serve {pipeline}`",
            code=2,
        )
    models.raise_for_status()
    return dict(models.json())


def _refused_rows(body: dict[str, Any]) -> dict[int, str]:
    """The row indices a 404 ``unknown_entity`` names (``rows[3].customer_id``), with why."""
    out = {}
    for p in body.get("problems", []):
        name = str(p.get("field", ""))
        if name.startswith("rows[") and "]" in name:
            out[int(name[5 : name.index("]")])] = str(p.get("problem", ""))
    return out


def send(
    client: httpx.Client,
    url: str,
    spec: PipelineSpec,
    rows: list[dict[str, Any]],
    labels: list[Any],
    replay_id: str,
    batch_size: int,
    rate: float,
) -> Sent:
    """Send every batch at no more than ``rate`` requests a second. Rows whose entity the store
    does not know (404 ``unknown_entity``) are dropped from their request, which is sent again
    without them; any other refusal stops the replay."""
    import httpx

    endpoint = f"{url}/v1/pipelines/{spec.name}/predict"
    key = spec.entity_key
    sent = Sent()
    started = time.monotonic()
    plan = batches(rows, key, batch_size)
    for n, indices in enumerate(plan):
        attempt = 0
        while indices:
            due = started + sent.requests / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            request_id = f"replay-{replay_id}-{n:05d}" + (f"-{attempt}" if attempt else "")
            try:
                response = client.post(
                    endpoint,
                    json={"rows": [rows[i] for i in indices]},
                    headers={"X-Request-ID": request_id},
                )
            except httpx.TransportError as exc:
                raise ReplayError(
                    f"request {n + 1} of {len(plan)} to {endpoint} failed "
                    f"({type(exc).__name__}: {exc}): is the service still running?"
                ) from None
            sent.requests += 1
            body = response.json() if "json" in response.headers.get("content-type", "") else {}
            if response.status_code == 404 and body.get("error") == "unknown_entity":
                refused = _refused_rows(body)
                if not refused:
                    raise ReplayError(f"request {request_id}: 404 {response.text[:300]}")
                sent.refused += [f"{rows[indices[i]][key]}: {why}" for i, why in refused.items()]
                indices = [j for i, j in enumerate(indices) if i not in refused]
                attempt += 1
                continue
            if response.status_code != 200:
                raise ReplayError(
                    f"request {request_id} ({len(indices)} rows) answered "
                    f"{response.status_code}: {response.text[:500]}"
                )
            for p in body["predictions"]:
                i = indices[int(p["row"])]
                sent.scored.append(
                    {key: rows[i][key], "label": labels[i], "request_id": request_id}
                )
            break
    sent.seconds = time.monotonic() - started
    return sent


def write_outcomes(
    home: PlatformHome, spec: PipelineSpec, sent: Sent, replay_id: str
) -> tuple[Path, int]:
    """The labelled scored rows as an outcomes file (temporary name, then renamed); the
    number of scored rows without a label, which it leaves out."""
    import pandas as pd

    frame = pd.DataFrame(sent.scored, columns=[spec.entity_key, "label", "request_id"])
    unlabelled = int(frame["label"].isna().sum())
    frame = frame[frame["label"].notna()].rename(columns={"label": spec.label})
    frame["outcome_at"] = datetime.now(UTC).isoformat()
    directory = home.pipeline_dir(spec.name) / "replay"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{replay_id}.parquet"
    tmp = directory / f".{path.name}.tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path, unlabelled


def wait_for_log(home: PlatformHome, pipeline: str, request_ids: set[str], since: datetime) -> int:
    """How many of the replay's requests the prediction log holds, waiting up to
    ``LOG_WAIT_SECONDS`` for the service's writer (it writes every second)."""
    from ml_platform.serving.prediction_log import read_predictions

    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        logged = read_predictions(home, pipeline, since)
        found = len(request_ids & set(logged["request_id"].astype(str)))
        if found == len(request_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def evaluate(spec: PipelineSpec, definitions: str, since: str) -> bool:
    """Run ``<pipeline>_online_evaluation_job`` as ``ml-platform run`` runs a job, print its
    verdict and the ledger's decisions since ``since`` (ISO time); False if the run failed."""
    import dagster as dg

    from ml_platform import runner
    from ml_platform.components.online_evaluation import online_evaluation_job_name
    from ml_platform.home import activate_home
    from ml_platform.registry.ledger import open_ledger
    from ml_platform.training.tracking import Tracking

    runner.quiet_warnings()
    home = activate_home()
    job_name = online_evaluation_job_name(spec.name)
    launch = str(uuid.uuid4())
    job = dg.build_reconstructable_job(
        "ml_platform.runner",
        "training_job",
        reconstructable_kwargs={"target": definitions, "job_name": job_name},
    )
    console.print(f"running [bold]{job_name}[/bold] on home {home.root}")
    with dg.DagsterInstance.get() as instance:
        try:
            runner.refuse_if_busy(instance, spec.name)
        except runner.PipelineBusy as exc:
            console.print(f"[red]error:[/red] {exc}")
            return False
        with (
            runner.terminal_only(console, verbose=False),
            dg.execute_job(
                job,
                instance=instance,
                run_config=runner.QUIET,
                tags={**runner._tags(launch), "launched_by": "ml-platform replay"},
                raise_on_error=False,
            ) as result,
        ):
            ok, run_id = result.success, result.run_id
            failures = [
                f"{e.step_key}: {runner._root_cause(e)}"
                for e in result.all_events
                if e.event_type_value == "STEP_FAILURE"
            ]
        meta = runner._run_metadata(instance, f"{spec.name}_online_evaluation", run_id)
    if not ok:
        console.print(f"[red]FAILED[/red] run {run_id}: {'; '.join(failures)[:800]}")
        return False
    if meta.get("status") == "no active rollout":
        console.print(
            f"no active rollout of '{spec.name}': nothing to judge (start one with "
            f"`ml-platform rollout {spec.name} start --mode shadow`)"
        )
    else:
        console.print(
            f"verdict [bold]{meta.get('verdict')}[/bold], action [bold]{meta.get('action')}"
            f"[/bold] (run {run_id}): {meta.get('summary')}"
        )
    ledger = open_ledger(home, Tracking(home.tracking_uri, home.artifact_root))
    decisions = [d for d in ledger.history(spec.name) if d.decided_at >= since]
    for d in decisions:
        console.print(
            f"ledger: #{d.id} {d.action} v{d.version or '-'} (previous champion "
            f"v{d.previous_champion or '-'}) by {d.actor}: {d.reason}"
        )
    if not decisions:
        console.print("ledger: no decision yet (the test wants more labelled rows)")
    console.print(f"see `ml-platform models history {spec.name}` for the whole ledger")
    return True


@app.command()
def replay(
    pipeline: Annotated[str, typer.Argument(help="A declared pipeline.")],
    days: Annotated[
        int, typer.Option("--days", min=1, help="How many of the newest landed days to send.")
    ] = 1,
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    rate: Annotated[
        float, typer.Option(min=0.1, help="At most this many requests a second.")
    ] = 20.0,
    batch_size: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="Rows per request.")] = 100,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per request.")] = 30.0,
    run_evaluation: Annotated[
        bool,
        typer.Option(
            "--evaluate",
            help="Then run the pipeline's online evaluation job here and print its verdict "
            "and the ledger's decision.",
        ),
    ] = False,
    definitions: Annotated[
        str, typer.Option(help="The code location of the evaluation job (as for `run`).")
    ] = "ml_platform.definitions:defs",
) -> None:
    """Send the newest N landed days' rows to a running service as predictions, then their
    labels as outcomes; with --evaluate, judge the rollout."""
    import httpx
    import pandas as pd

    from ml_platform.cli.labels import labels
    from ml_platform.features.definitions import features_table
    from ml_platform.home import activate_home

    spec = _spec(pipeline)
    home = activate_home()
    began = datetime.now(UTC)
    url = url.rstrip("/")
    try:
        if spec.event_timestamp is None:
            raise ReplayError(
                f"'{pipeline}' declares no event timestamp: it has no landed days to replay", 2
            )
        table = features_table(spec, home)
        if not table.exists():
            raise ReplayError(
                f"no feature table at {table}: run `ml-platform run {pipeline}` first", 2
            )
        chosen = newest_days(spec, pd.read_parquet(table), days)
        if chosen.empty:
            raise ReplayError(f"the feature table {table} has no rows", 2)
        labels_ = _labels(spec, home, chosen)
        rows = request_rows(spec, chosen)
        day_list = sorted(set(chosen["_day"]))
        replay_id = f"{began:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        with httpx.Client(timeout=timeout) as client:
            served = check_service(client, url, pipeline)
            rollout = served.get("rollout") or {}
            console.print(
                f"replay {replay_id}: {len(rows):,} rows of {', '.join(day_list)} to {url} "
                f"(champion v{(served.get('champion') or {}).get('version')}, rollout "
                f"{rollout.get('mode', 'off')}), {batch_size} rows a request, at most "
                f"{rate:g} requests/s"
            )
            sent = send(client, url, spec, rows, list(labels_), replay_id, batch_size, rate)
    except ReplayError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(exc.code) from None
    console.print(
        f"sent {sent.requests} requests in {sent.seconds:.1f} s: {len(sent.scored):,} rows "
        f"scored, {len(sent.refused)} refused"
        + (f" (first: {sent.refused[0]})" if sent.refused else "")
    )
    if not sent.scored:
        console.print("[red]error:[/red] no row was scored: no outcomes to send")
        raise typer.Exit(1)
    ids = {r["request_id"] for r in sent.scored}
    logged = wait_for_log(home, pipeline, ids, began)
    if logged < len(ids):
        console.print(
            f"[yellow]warning:[/yellow] the prediction log of home {home.root} holds "
            f"{logged} of the {len(ids)} replayed requests after {LOG_WAIT_SECONDS:g} s: is the "
            "service on another home, or started with --no-prediction-log? Outcomes that "
            "match no logged prediction label nothing."
        )
    path, unlabelled = write_outcomes(home, spec, sent, replay_id)
    if unlabelled:
        console.print(f"{unlabelled} scored rows have no label yet: left out of the outcomes")
    console.print(f"outcomes: {path}")
    labels(pipeline, data=path, timestamp_column="outcome_at", label_column=None)
    if not run_evaluation:
        console.print(
            f"next: the online evaluation sensor runs {pipeline}_online_evaluation_job on new "
            f"outcomes while the Dagster daemon runs (make dev), or launch it in the Dagster UI; "
            f"--evaluate runs it here. Then: `ml-platform models history {pipeline}`."
        )
        return
    if not evaluate(spec, definitions, began.isoformat()):
        raise typer.Exit(1)
