"""The run's dbt server: dagster-dbt's subprocess is its client, which relays the server's dbt
output and exit code, or runs the real dbt when there is no server."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ml_platform.featurestore import dbt_server
from ml_platform.featurestore.dbt_project import DBT_PROJECT_DIR, PARSE_CACHE
from ml_platform.home import PlatformHome


def _client(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([dbt_server.client_executable() or "", *args], capture_output=True,
                          text=True, timeout=300, cwd=DBT_PROJECT_DIR,
                          env={**os.environ, **env})


def test_without_a_server_the_client_runs_dbt_itself() -> None:
    assert dbt_server.client_executable() is not None, "make venv installs ml-platform-dbt"
    out = _client(["--version"], **{dbt_server.SERVER_ENV: "/nonexistent/socket"})
    assert out.returncode == 0
    assert "Core:" in out.stdout


@pytest.mark.slow
def test_the_server_parses_ahead_and_relays_the_build_and_its_exit_code(home: PlatformHome
                                                                       ) -> None:
    server = dbt_server.start(home.root, DBT_PROJECT_DIR)
    assert server is not None and dbt_server.claim() is server
    try:
        # No validated batch in this home: the staging model cannot read its source.
        out = _client(["build", "--select", "stg_loan_applications"],
                      ML_PLATFORM_HOME=str(home.root), DBT_LOG_FORMAT="json",
                      DBT_TARGET_PATH=str(home.dbt_dir / "runs" / "t"),
                      **{dbt_server.SERVER_ENV: server.address})
    finally:
        server.stop()
    assert out.returncode == 1, out.stdout + out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    names = {e["info"]["name"] for e in events}
    assert "MainReportVersion" in names  # dbt's own structured log, relayed line by line
    assert any(e["info"]["level"] == "error" for e in events)
    # the server parsed ahead (a dbt run directly would write only to DBT_TARGET_PATH), and
    # its parse is kept for the next run on this home
    assert (home.dbt_dir / "server" / "manifest.json").exists()
    assert (home.dbt_dir / PARSE_CACHE).exists()
    assert dbt_server.claim() is None  # one build per server
