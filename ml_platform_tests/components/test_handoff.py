"""The hand-off IO manager: a step loads what its upstream produced in the same run, never the
newest materialization of another run; an upstream outside the run falls back to the newest."""

import dagster as dg
import pytest

from ml_platform.components.handoff import HandoffIOManager, handoff

UP = dg.AssetKey("up")


@dg.asset(key=UP, config_schema={"value": str})
def up(context: dg.AssetExecutionContext) -> dict:
    return {"value": context.op_execution_context.op_config["value"]}


@dg.asset
def down(up: dict) -> dict:
    return {"seen": up["value"]}


def test_a_step_reads_its_own_runs_upstream_not_the_newest() -> None:
    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize(
        [up],
        instance=instance,
        resources={"io_manager": HandoffIOManager()},
        run_config={"ops": {"up": {"config": {"value": "a"}}}},
    )
    second = dg.materialize(
        [up],
        instance=instance,
        resources={"io_manager": HandoffIOManager()},
        run_config={"ops": {"up": {"config": {"value": "b"}}}},
    )
    # The first run's step, loading after the second run finished, still gets its own value.
    assert handoff(instance, UP, first.run_id) == {"value": "a"}
    assert handoff(instance, UP, second.run_id) == {"value": "b"}
    # Outside any run: the newest.
    assert handoff(instance, UP, None) == {"value": "b"}
    # A run that did not materialize it gets an error naming the run, unless it may fall back.
    with pytest.raises(dg.Failure, match="no materialization in run not-a-run"):
        handoff(instance, UP, "not-a-run")
    assert handoff(instance, UP, "not-a-run", fallback=True) == {"value": "b"}


def test_in_a_whole_run_and_in_a_partial_selection() -> None:
    instance = dg.DagsterInstance.ephemeral()
    resources = {"io_manager": HandoffIOManager()}
    whole = dg.materialize(
        [up, down],
        instance=instance,
        resources=resources,
        run_config={"ops": {"up": {"config": {"value": "x"}}}},
    )
    assert whole.output_for_node("down") == {"seen": "x"}
    dg.materialize(
        [up],
        instance=instance,
        resources=resources,
        run_config={"ops": {"up": {"config": {"value": "y"}}}},
    )
    # Only `down` selected: its upstream is outside the run, so the newest one is read.
    partial = dg.materialize(
        [up, down], instance=instance, resources=resources, selection=[down.key]
    )
    assert partial.output_for_node("down") == {"seen": "y"}


def test_nothing_to_hand_over_says_what_to_materialize() -> None:
    instance = dg.DagsterInstance.ephemeral()
    with pytest.raises(dg.Failure, match="'up' has no materialization"):
        handoff(instance, UP, None)
