"""The reproducibility check, in a fresh Python process with another native thread count.

At training time the candidate refits its best parameters on a fixed sample of the training set
and records the hash of the predictions (``fitting.reproducibility_hash``). The check repeats
that in a new interpreter (``python -m ml_platform.training.reproduce REQUEST.json``) whose
OpenMP/BLAS pools have a different size (1 thread if training used more, else 2): what depends on
the process (hash randomization of str, an unseeded generator, ``os.getpid()``, the order of a
set, a thread-count-dependent reduction) shows up as another hash. The child reads the training
set and draws the sample itself, so the sample selection is checked too. It gets
``TIMEOUT_SECONDS`` before the check fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ml_platform.spec import PipelineSpec

TIMEOUT_SECONDS = 300
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def native_threads() -> int:
    """Threads of this process's largest native pool (OpenMP, BLAS) as threadpoolctl sees it;
    the CPU count if none is loaded yet."""
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info()), default=os.cpu_count() or 1)


def other_thread_count(training_threads: int) -> int:
    """One thread if training used several (or did not say), else two."""
    return 2 if training_threads == 1 else 1


@dataclass(frozen=True)
class Verdict:
    passed: bool
    recorded_hash: str
    retrained_hash: str | None
    training_threads: int
    check_threads: int | None
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def description(self) -> str:
        if self.error is not None:
            return f"the fresh-process retrain failed: {self.error}"
        if self.passed:
            return (
                f"a fresh process with {self.check_threads} native thread(s) (training: "
                f"{self.training_threads or 'unknown'}) reproduced the predictions"
            )
        return (
            f"a fresh process with {self.check_threads} native thread(s) (training: "
            f"{self.training_threads or 'unknown'}) predicted differently on the fixed "
            "sample: training is not deterministic for this spec and data"
        )


def check(
    spec: PipelineSpec,
    training_set_path: str,
    params: dict[str, Any],
    recorded_hash: str,
    training_threads: int,
    timeout: float = TIMEOUT_SECONDS,
) -> Verdict:
    """Refit in a new interpreter and compare its prediction hash with ``recorded_hash``."""
    threads = other_thread_count(training_threads)
    env = {
        **os.environ,
        **dict.fromkeys(THREAD_VARIABLES, str(threads)),
        # The same import path as here: the spec may name the user's feature functions.
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    started = time.perf_counter()

    def verdict(retrained: str | None, child_threads: int | None, error: str | None) -> Verdict:
        return Verdict(
            error is None and retrained == recorded_hash,
            recorded_hash,
            retrained,
            training_threads,
            child_threads,
            time.perf_counter() - started,
            error,
        )

    with tempfile.TemporaryDirectory(prefix="reproduce-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(
            json.dumps(
                {
                    "spec": spec.model_dump(mode="json"),
                    "training_set_path": training_set_path,
                    "params": params,
                }
            )
        )
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "ml_platform.training.reproduce", str(request)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return verdict(None, None, f"no answer within {timeout:.0f} s")
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return verdict(
            None, None, f"exit code {proc.returncode}: {proc.stderr.strip()[-800:] or 'no output'}"
        )
    return verdict(answer["hash"], answer["threads"], None)


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from ml_platform.training import fitting

    request = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    spec = PipelineSpec.model_validate(request["spec"])
    frame = pd.read_parquet(request["training_set_path"])
    digest = fitting.reproducibility_hash(spec, frame, request["params"])
    print(json.dumps({"hash": digest, "threads": native_threads(), "pid": os.getpid()}))


if __name__ == "__main__":
    main()
