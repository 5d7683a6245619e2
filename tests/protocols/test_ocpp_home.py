"""Household EVs of the flexibility plan and DR behind OCPP home charge points: their ``ev_limit``
set points leave the loop as ``SetChargingProfile`` limits (W) and, for V2G discharge, OCPP 2.1
central set points; read back on the charge-point side, audited with OCPP message ids."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gridpilot.agent import AuditLog, FieldWorld, Orchestrator, Plan, demo_grid
from gridpilot.agent.flexlink import release_commands
from gridpilot.field import Command, FleetConfig
from gridpilot.protocols.ocpp.fieldlink import OcppWorld

EVENING = 200 * 96 + 17 * 4
FLEET = FleetConfig(
    share_pv=0.0, share_ev=0.02, share_water_heater=0.1, base_share=0.9, ev_v2g_share=0.5
)


@pytest.fixture(scope="module")
def loop() -> Any:
    audit = AuditLog(":memory:")
    field = FieldWorld(demo_grid("case33bw"), start_step=EVENING, fleet=FLEET)
    world = OcppWorld(field, audit=audit, meter_s=0.2)
    orch = Orchestrator(world, audit=audit)
    orch.step()
    yield orch, world
    world.close()


def test_a_schedule_with_ev_charging_and_v2g_reaches_the_home_charge_points(loop: Any) -> None:
    orch, world = loop
    f = world.inner.devices
    v2g = np.flatnonzero(f.ev_v2g)
    plain = np.flatnonzero(~f.ev_v2g)
    a, b, c = int(plain[0]), int(v2g[0]), int(plain[1])
    before_c = float(f.ev_limit_kw[c])
    cmds = [Command("ev_limit", np.array([a, b, c]), np.array([3.0, -2.5, -2.0]), "sched-1:0")]
    plan = Plan([], "flex schedule: charge one, discharge one", "flexplan", {"_commands": cmds})
    out = orch.submit(plan, "op")
    assert out["status"] == "done"
    entries = {e["what"]["device"]: e for e in orch.audit.entries(limit=50, kind="command")}
    ea, eb, ec = (entries[f"ev-home-{k}"] for k in (a, b, c))
    assert (
        ea["status"] == "done" and ea["result"]["message_id"] and ea["what"]["kind"] == "ev_limit_w"
    )
    assert ea["what"]["value"] == 3000.0 and ea["what"]["tag"] == "sched-1:0"
    assert eb["status"] == "done" and eb["result"]["message_id"]
    assert eb["what"]["kind"] == "ev_setpoint_w" and eb["what"]["value"] == -2500.0
    assert eb["result"]["protocol"] == "ocpp2.1"
    # a discharge asked of a 2.0.1 home charger: refused before sending, with the reason
    assert ec["status"] == "failed" and ec["result"]["status"] == "invalid"
    assert "2.1" in ec["result"]["reason"]
    orch.step()  # the field steps: the charge points say what they hold, the EVs follow it
    assert world.held_w[f"ev-home-{a}"] == 3000.0  # read on the charge-point side
    assert world.held_w[f"ev-home-{b}"] == -2500.0
    assert f.ev_limit_kw[a] == pytest.approx(3.0) and f.ev_limit_kw[b] == pytest.approx(-2.5)
    assert f.ev_limit_kw[c] == pytest.approx(before_c)  # refused: what was in effect stays
    assert f"command_rejected:ev-home-{c}" in orch.alarms
    assert any(
        e["kind"] == "command_rejected" and e.get("device") == f"ev-home-{c}" for e in orch.events
    )


def test_dr_release_goes_over_ocpp_and_other_commands_pass_through(loop: Any) -> None:
    orch, world = loop
    f = world.inner.devices
    ids = {"battery": np.array([], int), "water_heater": np.array([0]), "ev": np.arange(3)}
    n_before = len(orch.audit.entries(limit=500, kind="command"))
    world.apply(release_commands(f, ids, "dr-9:release"))  # what FlexDR sends at an event's end
    assert len(orch.audit.entries(limit=500, kind="command")) == n_before + 3
    orch.step()
    for k in range(3):
        assert world.held_w[f"ev-home-{k}"] == pytest.approx(f.ev_charger_kw[k] * 1e3)
    assert not f.wh_paused[0]  # the water heater's command went the field's own way
    with pytest.raises(Exception, match="target"):
        world.apply([Command("ev_limit", np.array([10_000]), 1.0)])


def test_the_flexibility_plan_sends_v2g_central_set_points_over_ocpp() -> None:
    from gridpilot.agent.cli import DEMO_START_STEP

    audit = AuditLog(":memory:")
    world = OcppWorld(
        FieldWorld(demo_grid("case33bw"), start_step=DEMO_START_STEP), audit=audit, meter_s=0.5
    )
    try:
        orch = Orchestrator(world, audit=audit, flex_plan=True)  # the real FlexPlanPolicy
        orch.step()
        cmds = [
            e
            for e in audit.entries(limit=2000, kind="command")
            if e["what"]["device"].startswith("ev-home-")
        ]
        assert cmds and all(e["result"]["message_id"] and e["what"]["tag"] for e in cmds)
        v2g = [e for e in cmds if e["what"]["kind"] == "ev_setpoint_w" and e["what"]["value"] < 0]
        assert v2g and all(e["status"] == "done" for e in v2g)
        assert all(e["result"]["protocol"] == "ocpp2.1" for e in v2g)
        plans = [
            e for e in audit.entries(limit=200, kind="action") if e["actor"] == "policy:flexplan"
        ]
        assert plans, "the schedule's plan is audited as before"
        orch.step()
        f = world.inner.devices
        for e in v2g:
            sid = e["what"]["device"]
            assert world.held_w[sid] == e["what"]["value"]  # held by the charge point
            k = int(sid.removeprefix("ev-home-"))
            assert f.ev_limit_kw[k] == pytest.approx(e["what"]["value"] / 1e3, abs=1e-3)
    finally:
        world.close()
