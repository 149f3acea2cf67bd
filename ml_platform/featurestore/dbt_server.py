"""A dbt that has already started, for the `dbt build` of an in-process run.

Every `dbt build` subprocess spends about 3 s importing dbt and 1-3 s parsing the project before
it runs any SQL (about 3 s at 1M events). ``ml-platform run`` starts this server with the run:
it imports dbt and parses the project for the run's home on the other core while the run's
process starts Dagster and validates, then waits for one build.

dagster-dbt still runs its usual subprocess, so its event stream, asset checks and artifacts
are unchanged; that subprocess is this module's small client (the ``ml-platform-dbt`` script),
which hands its arguments, environment and directory to the server and relays the server's
output and exit code. A client that finds no server runs the real dbt itself. The server
answers one build and exits; it reuses its parse only for the home it parsed (the profile
names the home's warehouse), otherwise dbt parses as usual.

This module imports only the standard library at the top: the client starts in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

SERVER_ENV = "ML_PLATFORM_DBT_SERVER"
EXIT_MARK = b"\x00ml-platform-dbt-exit "
CLIENT = "ml-platform-dbt"
_server: Server | None = None


def dbt_executable() -> str:
    """The dbt installed beside this Python (the venv's bin is not always on PATH)."""
    local = Path(sys.executable).parent / "dbt"
    return str(local) if local.exists() else "dbt"


def client_executable() -> str | None:
    local = Path(sys.executable).parent / CLIENT
    return str(local) if local.exists() else None


class Server:
    """The server process of one run, and the socket it listens on."""

    def __init__(self, home_root: Path, project_dir: Path) -> None:
        self._dir = tempfile.mkdtemp(prefix="mlp-dbt-")  # short: socket paths are limited
        self.address = os.path.join(self._dir, "socket")
        log_dir = home_root / "dbt"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "server.log", "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ml_platform.featurestore.dbt_server", self.address,
                 str(home_root), str(project_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        """End the server if no build claimed it, and remove its socket."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


def start(home_root: Path, project_dir: Path) -> Server | None:
    """Start this process's server for the next build on ``home_root`` (None: no client
    script is installed, so builds run dbt directly)."""
    global _server
    stop()
    if client_executable() is None:
        return None
    _server = Server(home_root, project_dir)
    return _server


def claim() -> Server | None:
    """The server started for this build, once: a later build runs dbt directly."""
    global _server
    server, _server = _server, None
    return server


def stop() -> None:
    server = claim()
    if server is not None:
        server.stop()


def _parse(home_root: Path, project_dir: Path) -> object | None:
    """The project's manifest for ``home_root``, starting from the home's last parse."""
    from dbt.cli.main import dbtRunner

    from ml_platform.featurestore.dbt_project import keep_parse, primed_target
    from ml_platform.home import PlatformHome

    home = PlatformHome(home_root)
    target = primed_target(home, home.dbt_dir / "server")
    result = dbtRunner().invoke(["parse", "--quiet", "--project-dir", str(project_dir),
                                 "--profiles-dir", str(project_dir),
                                 "--target-path", str(target)])
    if not result.success:
        print(f"dbt parse failed, the build will parse: {result.exception}", flush=True)
        return None
    keep_parse(home, target)
    return result.result


def serve(address: str, home_root: str, project_dir: str) -> None:
    """Listen at once (a client that comes early waits), parse, then answer one build."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(1)
    os.environ["ML_PLATFORM_HOME"] = home_root  # what profiles.yml reads
    try:
        manifest = _parse(Path(home_root), Path(project_dir))
    except Exception:
        traceback.print_exc()
        manifest = None
    conn, _ = listener.accept()
    listener.close()
    request = json.loads(conn.makefile("rb").readline())
    # The parse holds for this build only if the build's profile names the same home.
    if request["env"].get("ML_PLATFORM_HOME") != home_root:
        manifest = None
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(conn.fileno(), 1)
    os.dup2(conn.fileno(), 2)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # events stream
    code = 2
    try:
        from dbt.cli.main import dbtRunner

        result = dbtRunner(manifest=manifest).invoke(request["args"])  # type: ignore[arg-type]
        code = 0 if result.success else (2 if result.exception is not None else 1)
    except BaseException:  # noqa: BLE001 - reported to the client as dbt's own crash would be
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, EXIT_MARK + f"{code}\n".encode())
    conn.close()


def client() -> None:
    """``ml-platform-dbt <dbt args>``: the build on the run's server, or the real dbt."""
    args = sys.argv[1:]
    address = os.environ.pop(SERVER_ENV, "")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(address)
    except OSError:
        conn.close()
        dbt = dbt_executable()
        os.execvp(dbt, [dbt, *args])
    request = {"args": args, "env": dict(os.environ), "cwd": os.getcwd()}
    conn.sendall(json.dumps(request).encode() + b"\n")
    out = sys.stdout.buffer
    code = 2  # the server ended without an exit code: a crash
    for line in conn.makefile("rb"):
        output, mark, exit_code = line.partition(EXIT_MARK)
        out.write(output)
        out.flush()
        if mark:
            code = int(exit_code)
            break
    sys.exit(code)


if __name__ == "__main__":
    serve(*sys.argv[1:4])
