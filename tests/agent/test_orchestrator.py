from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import (
    Action,
    Orchestrator,
    Plan,
    Sections,
    SimWorld,
    locate_fault,
)
from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model import Grid

from .conftest import EVENING


def _line_live(world: SimWorld, line: int) -> bool:
    from gridpilot.twin import energised

    en = energised(world.grid, world.switch_closed)
    return bool(world.line_energised(world.switch_closed, en, world.grid.line.index_of([line]))[0])


def test_fault_location_from_fpis(fleet_grid: Grid) -> None:
    w = SimWorld(fleet_grid, start_step=EVENING)
    w.inject("fault", line=7)
    o = w.observe()
    assert (
        not o.switch_closed[0] and o.fpi[:7].all() and not o.fpi[7:].any()
    )  # breaker 1 tripped, FPIs 1-7
    loc = locate_fault(w.grid, Sections.build(w.grid), o.fpi, w.normal_closed)
    assert loc is not None and loc.buses == [8] and 7 in loc.lines
    assert set(loc.boundary_switches) >= {7, 8}


def test_flisr_isolates_and_restores_autonomously(orch: Orchestrator) -> None:
    orch.run(2)
    orch.inject("fault", line=7)
    rep = orch.step()
    assert rep.executed, "FLISR should act in the step the breaker trips"
    orch.step()
    o = orch.last
    dead = orch.grid.bus.ids[~o.energised].tolist()
    assert dead == [8]  # only the faulted section stays dark
    assert not _line_live(orch.world, 7)  # and the faulted line is never re-energised
    assert o.vmin_pu >= orch.limits.v_min_pu - 1e-3
    acts = orch.audit.entries(kind="action")
    assert acts and acts[0]["actor"] == "policy:flisr" and acts[0]["verdict"]["ok"]
    assert "section" in acts[0]["why"] and acts[0]["data"]["section_buses"] == [8]
    # crew repairs: normal configuration, faults forgotten, everyone supplied
    orch.inject("repair")
    orch.step()
    assert orch.last.energised.all() and not orch.known_faults


def test_propose_mode_waits_for_the_operator(fleet_grid: Grid) -> None:
    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), mode="propose")
    o.step()
    o.inject("fault", line=7)
    rep = o.step()
    assert rep.proposed and not rep.executed
    o.step()  # the same plan is not proposed twice
    pending = [p for p in o.proposals.values() if p.status == "pending"]
    assert len(pending) == 1
    assert (~o.last.energised).sum() == 32  # nothing done yet: the feeder is dark
    out = o.approve(pending[0].plan.id, "alice")
    assert out["status"] == "approved"
    o.step()
    assert (~o.last.energised).sum() == 1
    kinds = [e["kind"] for e in o.audit.entries()]
    assert "proposal" in kinds and "approval" in kinds
    with pytest.raises(ValidationError, match="not pending"):
        o.approve(pending[0].plan.id, "alice")
    with pytest.raises(UnknownComponentError):
        o.reject(99999, "bob")


def test_operator_command_refused_by_guard_is_audited(orch: Orchestrator) -> None:
    orch.step()
    out = orch.submit(Plan([Action("switch", 33, 1)], "close a tie", "operator"), "alice")
    assert out["status"] == "refused" and any("radial" in r for r in out["reasons"])
    e = orch.audit.entries(kind="refused")[0]
    assert e["actor"] == "operator:alice" and e["status"] == "refused"
    ok = orch.submit(Plan([Action("dr", None, 0.5)], "DR drill", "operator"), "alice")
    assert ok["status"] == "done" and orch.dr_level == 0.5 and orch.world.dr_level == 0.5


def test_wind_drop_calls_demand_response(orch: Orchestrator) -> None:
    orch.run(12)
    orch.inject("wind_drop", factor=0.0)
    orch.run(3)
    assert orch.dr_requests.get("dr", 0) > 0
    assert any(
        e["kind"] == "action" and "renewable" in (e.get("reason") or "") for e in orch.events
    )


def test_generator_trip_gets_battery_response(orch: Orchestrator) -> None:
    orch.run(2)
    wind = int(orch.grid.generator.ids[orch.grid.generator["kind"] == 1][0])
    orch.inject("gen_trip", generator=wind)
    orch.step()
    assert np.all(orch.storage_cmd_mw < 0)  # batteries discharging


def test_a_broken_policy_is_audited_and_the_loop_goes_on(fleet_grid: Grid) -> None:
    class Broken:
        name = "broken"

        def decide(self, ctx):
            raise RuntimeError("boom")

    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), policies=[Broken()])
    o.run(2)
    assert o.counters["steps"] == 2
    assert o.audit.entries(kind="error")[0]["status"] == "failed"


def test_bad_input_is_refused_clearly(fleet_grid: Grid) -> None:
    with pytest.raises(ValidationError, match="mode"):
        Orchestrator(SimWorld(fleet_grid), mode="yolo")
    w = SimWorld(fleet_grid)
    with pytest.raises(UnknownComponentError, match="line"):
        w.inject("fault", line=4242)
    with pytest.raises(UnknownComponentError, match="event kind"):
        w.inject("meteor")
    with pytest.raises(ValidationError, match="step_s"):
        SimWorld(fleet_grid, step_s=0)


def test_measurements_arrive_through_signed_telemetry_and_forgeries_are_refused(
    orch: Orchestrator,
) -> None:
    orch.step()
    assert orch.link is not None and orch.link.totals["accepted"] == 3
    truth = orch.world.last
    assert (
        np.allclose(orch.last.v_pu, truth.v_pu)
        and (orch.last.switch_closed == truth.switch_closed).all()
    )
    ts_ms = int(orch.world.time.astype("datetime64[ms]").astype(np.int64))
    orch.receive_foreign([orch.link.forged_frame(ts_ms, [1])])  # "the feeder breaker is open"
    orch.step()
    assert orch.last.switch_closed[0] and orch.last.energised.all()  # not believed
    assert orch.counters["telemetry_rejected"] == 1
    e = orch.audit.entries(kind="refused", actor="telemetry")[0]
    assert e["what"]["frames_rejected"] == {"bad_signature": 1}
    assert any(ev["kind"] == "security" for ev in orch.events)
