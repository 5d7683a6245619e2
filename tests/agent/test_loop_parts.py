"""The orchestrator's typed parts (issue #15): the worlds' protocols and the loop's logging."""

from __future__ import annotations

import logging

import pytest

from gridpilot.agent import FieldWorld, Orchestrator, SimWorld
from gridpilot.model import Grid

EVENING = 200 * 96 + 17 * 4  # a summer day, 17:00


def test_both_worlds_implement_the_world_protocol_and_say_what_they_can(
    fleet_grid: Grid,
) -> None:
    from gridpilot.agent.worldtypes import (
        AlarmingWorld,
        DeviceWorld,
        EvDeferringWorld,
        MeteredWorld,
        World,
    )

    sim = SimWorld(fleet_grid, start_step=EVENING)
    field = FieldWorld(fleet_grid, start_step=EVENING)
    assert isinstance(sim, World) and isinstance(field, World)
    assert isinstance(field, DeviceWorld) and isinstance(field, MeteredWorld)
    assert not isinstance(sim, DeviceWorld) and not isinstance(sim, MeteredWorld)
    assert not isinstance(sim, EvDeferringWorld) and not isinstance(field, EvDeferringWorld)
    assert not isinstance(sim, AlarmingWorld) and not isinstance(field, AlarmingWorld)
    orch = Orchestrator(field, policies=[], telemetry=False, se_every_steps=0)
    assert orch.device_world is field and orch.flexdr is not None
    assert Orchestrator(sim, policies=[], telemetry=False).device_world is None


def test_a_policy_that_raises_is_logged_with_its_traceback_and_fields(
    fleet_grid: Grid, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        name = "broken\nFAKE LOG LINE"  # a name is not trusted into a log line

        def decide(self, ctx: object) -> list[object]:
            raise RuntimeError("boom")

    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), policies=[Broken()])
    with caplog.at_level(logging.ERROR, logger="gridpilot.agent"):
        o.run(1)
    recs = [r for r in caplog.records if r.name.startswith("gridpilot.agent")]
    assert len(recs) == 1
    rec = recs[0]
    assert rec.exc_info is not None and rec.exc_info[0] is RuntimeError  # the traceback
    assert "\n" not in rec.getMessage() and "\\x0a" in rec.getMessage()
    assert rec.__dict__["policy"] == "broken\\x0aFAKE LOG LINE"
    assert rec.__dict__["step"] == 0
    assert o.audit.entries(kind="error")[0]["status"] == "failed"  # audited as before


def test_a_refused_plan_is_logged_with_structured_escaped_fields(
    fleet_grid: Grid, caplog: pytest.LogCaptureFixture
) -> None:
    from gridpilot.agent import Action, Plan

    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), policies=[], telemetry=False)
    plan = Plan([Action("switch", 999_999, 0.0)], "test", "ops\r\nFAKE")
    with caplog.at_level(logging.INFO, logger="gridpilot.agent"):
        out = o.submit(plan, actor="alice\nFAKE")
    assert out["status"] == "refused"
    recs = [r for r in caplog.records if r.name == "gridpilot.agent.planexec"]
    assert len(recs) == 1
    rec = recs[0]
    assert rec.__dict__["plan"] == plan.id
    assert rec.__dict__["reasons"] == ["switch 999999 does not exist"]
    assert "\n" not in rec.getMessage() and "\r" not in rec.getMessage()
    assert "\n" not in rec.__dict__["actor"] and "\n" not in rec.__dict__["source"]


def test_loop_options_are_one_checked_parameter_object_that_keywords_override(
    fleet_grid: Grid,
) -> None:
    from gridpilot.agent.orchestrator import LoopOptions
    from gridpilot.errors import ValidationError

    opts = LoopOptions(mode="propose", telemetry=False, se_every_steps=0, policies=[])
    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), opts, se_every_steps=3)
    assert o.mode == "propose" and o.link is None and o.policies == []
    assert o.se_every_steps == 3 and o.estimator is not None
    with pytest.raises(ValidationError, match="mode"):
        LoopOptions(mode="fast")
    with pytest.raises(ValidationError, match="se_every_steps"):
        Orchestrator(SimWorld(fleet_grid, start_step=EVENING), se_every_steps=-1)


def test_a_world_with_its_own_alarms_raises_them_in_the_loop(fleet_grid: Grid) -> None:
    """A world that is an AlarmingWorld (a protocol wrapper) has its alarms in the loop's."""

    class Refusing(SimWorld):
        @property
        def alarms(self) -> dict[str, dict[str, str]]:
            return {"device_refused:ev-3": {"severity": "major", "text": "ev-3 refused its limit"}}

    o = Orchestrator(Refusing(fleet_grid, start_step=EVENING), policies=[], telemetry=False)
    o.step()
    assert o.alarms["device_refused:ev-3"]["text"] == "ev-3 refused its limit"
    assert any(e["kind"] == "alarm" and "ev-3" in e["text"] for e in o.events)
