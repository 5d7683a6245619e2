"""Household DR only through OpenADR 3: the loop's DR event is published on a VTN, the field's
gateways (toadr3 VENs) act and report, the direct path is off (DR acts once), and the reports
feed delivered-vs-planned (127.0.0.1, bounded)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gridpilot.agent import Action, AuditLog, FieldWorld, Orchestrator, Plan, demo_grid
from gridpilot.protocols.openadr.fieldlink import OpenAdrWorld

EVENING = 200 * 96 + 17 * 4


def test_dr_goes_to_households_only_through_openadr_and_reports_come_back() -> None:
    field = FieldWorld(demo_grid("case33bw"), start_step=EVENING)
    seen: list[tuple[str, str]] = []
    real_apply = field.apply

    def spy(cmds: list[Any]) -> Any:
        seen.extend((c.name, str(c.cmd_id)) for c in cmds)
        return real_apply(cmds)

    field.apply = spy  # type: ignore[method-assign]
    audit = AuditLog(":memory:")
    world = OpenAdrWorld(field, audit)
    try:
        orch = Orchestrator(world, audit=audit)
        world.attach(orch)
        assert world.vens, "one gateway per bus with water heaters"
        orch.step()
        out = orch.submit(Plan([Action("dr", None, 1.0)], "drill: shed", "operator"), "op")
        assert out["status"] == "done"
        rec = orch.flexdr.records[-1]
        assert rec.status == "active" and rec.commands > 0
        assert world.suppressed > 0  # the direct path is off ...
        assert not any(
            tag.startswith("dr-") for _, tag in seen
        )  # ... nothing of it reached the field
        for _ in range(17):  # past the first 15-minute interval
            orch.step()
        pauses = [tag for name, tag in seen if name == "water_heater_pause"]
        assert pauses and set(pauses) == {"openadr"}  # the VENs acted, each once
        following = [v for v in world.vens if v.active]
        assert len(pauses) == len(following) > 0
        fleet = world.inner.devices
        paused = np.flatnonzero(fleet.wh_paused)
        by_vens = np.concatenate([v.water_heaters for v in following])
        assert set(paused.tolist()) == set(by_vens.tolist())
        evs = np.concatenate([v.evs for v in following])
        assert evs.size and np.all(fleet.ev_limit_kw[evs] < fleet.ev_charger_kw[evs])
        assert {n for n, t in seen if t == "openadr"} >= {"ev_limit", "battery_setpoint"}
        d = world.delivery(rec.id)
        assert d is not None and d["reported"][0] and len(d["vens"]) == len(following)
        assert d["planned_kw"][0] > 0
        assert rec.reported_reduction_mw is not None  # the reports fed the loop's record
        assert rec.reported_reduction_mw > 0.5 * rec.expected_mean_mw  # shed, not just reported
        kept = d["delivered_kw"]
        orch.step()  # updated in place: an interval is not counted twice
        assert world.delivery(rec.id)["delivered_kw"][0] == kept[0]
        orch.submit(Plan([Action("dr", None, 0.0)], "drill: release", "operator"), "op")
        orch.step()
        assert rec.status != "active" and not any(v.active for v in world.vens)
        assert not fleet.wh_paused.any()  # the gateways handed their devices back
        assert np.allclose(fleet.ev_limit_kw[evs], fleet.ev_charger_kw[evs])
        assert [n for n, t in seen if t.startswith("dr-")] == []
    finally:
        world.close()


def test_cli_demo_with_openadr_runs() -> None:
    from typer.testing import CliRunner

    from gridpilot.cli import _register, app

    _register()
    r = CliRunner().invoke(app, ["demo", "--no-serve", "--steps", "3", "--protocols", "openadr"])
    assert r.exit_code == 0, r.output
    assert '"audit_chain_ok": true' in r.output


def test_the_api_serves_the_gateways_vtn_not_a_second_one() -> None:
    from gridpilot.protocols.openadr import openadr_for

    world = OpenAdrWorld(FieldWorld(demo_grid("case33bw"), start_step=EVENING))
    try:
        orch = Orchestrator(world)
        world.attach(orch)
        app = openadr_for(orch)
        assert app.state.vtn is world.vtn
        assert not world.vtn.syncs  # published by the world, once
    finally:
        world.close()


def test_with_ocpp_underneath_the_gateways_ev_limits_go_to_the_home_charge_points() -> None:
    from gridpilot.protocols.ocpp.fieldlink import OcppWorld

    audit = AuditLog(":memory:")
    ocpp = OcppWorld(FieldWorld(demo_grid("case33bw"), start_step=EVENING), audit=audit)
    world = OpenAdrWorld(ocpp, audit)  # closes the OCPP world too
    try:
        orch = Orchestrator(world, audit=audit)
        world.attach(orch)
        orch.step()
        orch.submit(Plan([Action("dr", None, 1.0)], "drill: shed", "operator"), "op")
        orch.step()
        orch.step()
        cmds = [
            e
            for e in audit.entries(limit=1000, kind="command")
            if e["what"]["device"].startswith("ev-home-") and e["what"]["tag"] == "openadr"
        ]
        following = [v for v in world.vens if v.active]
        n_ev = sum(v.evs.size for v in following)
        assert n_ev and len(cmds) == n_ev  # one SetChargingProfile per EV of a following gateway
        assert all(e["status"] == "done" and e["result"]["message_id"] for e in cmds)
        assert not any(
            e["what"]["tag"].startswith("dr-") for e in audit.entries(limit=1000, kind="command")
        )
        k = int(np.concatenate([v.evs for v in following])[0])
        assert ocpp.held_w[f"ev-home-{k}"] == pytest.approx(0.0)  # level 3 of 3: limit 0 W
    finally:
        world.close()
