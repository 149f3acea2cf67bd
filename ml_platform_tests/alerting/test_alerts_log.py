from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ml_platform.alerting import Alert, Notifier, read_alerts_log
from ml_platform.alerting.log import append_line


def test_every_alert_is_a_json_line_in_the_log(alerts_log: Path, alert: Alert) -> None:
    deliveries = Notifier.from_env(alerts_log, environ={}).notify(alert)
    assert [(d.channel, d.ok) for d in deliveries] == [("log", True)]
    (record,) = read_alerts_log(alerts_log)
    assert record == {"record": "alert", **alert.to_dict()}


def _writer(args: tuple[Path, int]) -> None:
    path, worker = args
    for i in range(100):
        append_line(path, {"worker": worker, "i": i, "pad": "x" * 6000})  # > PIPE_BUF


def test_concurrent_writers_never_tear_a_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_writer, [(path, w) for w in range(4)]))
    records = read_alerts_log(path)
    assert len(path.read_text().splitlines()) == 400
    assert sorted((r["worker"], r["i"]) for r in records) == [
        (w, i) for w in range(4) for i in range(100)
    ]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    append_line(path, {"record": "alert", "id": "a"})
    with path.open("a") as f:
        f.write('{"record": "alert", "id": "b"')
    assert [r["id"] for r in read_alerts_log(path)] == ["a"]
