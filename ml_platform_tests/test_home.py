"""The platform home: one directory of state; the instance's dagster.yaml is the operator's."""

from __future__ import annotations

from pathlib import Path

from ml_platform.home import PROJECT_ROOT, PlatformHome


def test_ensure_writes_the_instance_config_only_when_absent(tmp_path: Path) -> None:
    home = PlatformHome(tmp_path / "home").ensure()
    instance_yaml = home.dagster_home / "dagster.yaml"
    assert instance_yaml.read_text() == (PROJECT_ROOT / "dagster.yaml").read_text()
    # An operator's edit (say, Postgres storage) survives every later use of the home.
    edited = instance_yaml.read_text() + "\n# operator: run storage on postgres\n"
    instance_yaml.write_text(edited)
    home.ensure()
    PlatformHome(home.root).ensure()
    assert instance_yaml.read_text() == edited
    assert not list(home.dagster_home.glob("tmp*")), "no temporary file is left behind"
