"""The orchestrator on gridpilot.field's simulator (FieldWorld, issue #9)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from gridpilot.agent import FieldWorld, Orchestrator, ScenarioSpec, run_one
from gridpilot.agent.world import Observation
from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.field import Command, DeviceFleet
from gridpilot.model import Grid

EVENING = 200 * 96 + 17 * 4  # a summer day, 17:00


class _Sealed:
    """A proxy for ``world.sim`` that only FieldWorld itself may touch."""

    def __init__(self, sim: Any) -> None:
        object.__setattr__(self, "_sim", sim)
        object.__setattr__(self, "callers", set())

    def __getattr__(self, name: str) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        self.callers.add(caller)
        if caller != "gridpilot.agent.fieldworld":
            raise AssertionError(f"{caller} read world.sim.{name}")
        return getattr(self._sim, name)


@pytest.fixture
def world(fleet_grid: Grid) -> FieldWorld:
    return FieldWorld(fleet_grid, start_step=EVENING)


def test_observation_comes_from_the_fields_readings(world: FieldWorld, fleet_grid: Grid) -> None:
    g = fleet_grid
    o = world.observe()
    assert isinstance(o, Observation) and o.t == 0 and o.converged
    assert str(o.time).startswith(str(world.time)[:16])
    assert o.v_pu.size == len(g.bus) and o.energised.all()
    assert o.line_loading_pct.size == len(g.line) and o.max_loading_pct > 0
    assert o.load_p_mw.size == len(g.load) and o.load_p_mw.sum() > 1.0
    assert o.load_q_mvar.size == len(g.load) and o.load_q_mvar.sum() > 0.3  # substation meters
    assert o.gen_p_mw.size == len(g.generator) and o.storage_soc.size == len(g.storage)
    assert 0 < o.losses_kw < 500  # feeder balance of the measurements
    # household load matches the grid's loads (FIELD_WORLD_FLEET): within 30 % at this hour
    assert 0.7 < o.load_p_mw.sum() / world.demand(0)["load_p_mw"].sum() <= 1.0 + 1e-9
    # a biased sensor shows in the observation: it is built from readings, not the truth
    world.sim.inject_sensor_bias("bus_v_pu", 0.01)
    o2 = world.observe()
    assert np.allclose(o2.v_pu, o.v_pu + 0.01)
    world.advance()
    assert world.observe().t == 1 and world.sim.t_s == pytest.approx(2 * world.step_s)
    assert isinstance(world.devices, DeviceFleet) and world.dr_share == 0.0


def test_commands_reach_the_field(world: FieldWorld, fleet_grid: Grid) -> None:
    o0 = world.observe()
    world.set_dr(1.0)
    world.set_ev_factor(0.0)
    world.set_storage(int(fleet_grid.storage.ids[0]), -0.2)
    acks = world.apply([Command("water_heater_pause")])
    assert acks[0].name == "ack" and acks[0].data["devices"] == world.devices.counts["water_heater"]
    world.advance()
    o1 = world.observe()
    assert o1.flex_p_mw.sum() == 0 and o0.flex_p_mw.sum() > 0
    assert o1.ev_p_mw.sum() == 0 and o1.storage_p_mw[0] == pytest.approx(-0.2)
    assert o1.storage_soc[0] < o0.storage_soc[0]
    dem = world.demand(1)
    ctl = world.controlled(dem)
    assert dem["flex_p_mw"].sum() > 0 and ctl["flex_p_mw"].sum() == 0  # curtailment counted
    with pytest.raises(ValidationError, match=r"value.*1\.5"):
        world.set_dr(1.5)
    with pytest.raises(ValidationError, match=r"value.*-1"):
        world.set_ev_factor(-1)
    with pytest.raises(UnknownComponentError, match="404"):
        world.set_switch(404, True)
    with pytest.raises(UnknownComponentError, match="meteor"):
        world.inject("meteor")
    with pytest.raises(ValidationError, match="step_s"):
        FieldWorld(fleet_grid, step_s=0)


def test_flisr_locates_isolates_and_restores_through_field_protection(
    world: FieldWorld, fleet_grid: Grid
) -> None:
    sealed = _Sealed(world.sim)
    world.sim = sealed  # type: ignore[assignment]  # the controller must never read it
    orch = Orchestrator(world)
    for _ in range(3):
        orch.step()
    orch.inject("fault", actor="test", line=7)
    rep = orch.step()
    assert rep.executed, "FLISR acted on the field's breaker trip and FPIs"
    trips = [e for e in orch.obs_history[-1].events if e["kind"] == "breaker_trip"]
    assert trips and trips[0]["switch"] == 1 and 7 in trips[0]["fpi"]
    for _ in range(3):
        orch.step()
    o = orch.last
    assert o is not None
    g = fleet_grid
    dead = set(g.bus.ids[~o.energised].tolist())
    assert dead and dead <= {7, 8}, f"only the faulted section is off, got {sorted(dead)}"
    assert 7 in orch.known_faults
    assert sealed.callers == {"gridpilot.agent.fieldworld"}
    # the crew repairs: normal configuration handed back, the controller forgets the fault
    orch.inject("repair", actor="test")
    orch.step()
    assert orch.last.energised.all() and not orch.known_faults
    assert np.array_equal(orch.last.switch_closed, world.normal_closed)


def test_a_false_pickup_off_the_fault_path_does_not_move_the_isolation(
    world: FieldWorld, fleet_grid: Grid
) -> None:
    orch = Orchestrator(world)
    orch.step()
    orch.inject("fpi_false_pickup", actor="test", switch=10)  # two sections below the fault
    orch.inject("fault", actor="test", line=7)
    rep = orch.step()
    assert rep.executed and not rep.refused
    trips = [e for e in orch.obs_history[-1].events if e["kind"] == "breaker_trip"]
    assert 10 in trips[0]["fpi"] and 8 not in trips[0]["fpi"]  # the wrong report is there
    for _ in range(3):
        orch.step()
    acts = orch.audit.entries(kind="action")
    assert len(acts) == 1  # one plan, right the first time
    flisr = acts[0]["data"]["flisr"]
    assert flisr["isolate"] == [7, 8]  # the fault between switches 7 and 8, as without it
    assert any("contradicts 1 indication" in n for n in flisr["notes"])
    dead = set(fleet_grid.bus.ids[~orch.last.energised].tolist())
    assert dead == {8}  # only the faulted section's bus is off; the rest restored


def test_scenario_on_the_field_world_and_bad_world(fleet_grid: Grid) -> None:
    p = {"at_min": 10, "repair_h": 0.5}
    unc = run_one(ScenarioSpec("fault", hours=1.0, controlled=False, params=p, world="field"))
    ctl = run_one(ScenarioSpec("fault", hours=1.0, controlled=True, params=p, world="field"))
    u, c = unc.kpis["energy_not_served_mwh"], ctl.kpis["energy_not_served_mwh"]
    assert u > 0.5 and c < 0.2 * u
    with pytest.raises(ValidationError, match=r"world.*moon"):
        run_one(ScenarioSpec("fault", hours=1.0, world="moon"))
