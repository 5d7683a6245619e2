"""The loop with the grid's batteries and PV inverters behind SunSpec Modbus TCP (127.0.0.1):
its battery set points go out as 704 WSet (read back), the PV inverters get a volt-var curve
(705), and a device that refuses (a Modbus exception, a curve it does not adopt) raises an
alarm and the loop re-plans on what is in effect."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gridpilot.agent import Action, AuditLog, FieldWorld, Orchestrator, Plan, demo_grid
from gridpilot.protocols.sunspec.fieldlink import DerWorldConfig, SunSpecWorld

EVENING = 200 * 96 + 17 * 4


@pytest.fixture(scope="module")
def loop() -> Any:
    audit = AuditLog(":memory:")
    cfg = DerWorldConfig(derate={"der-storage-2": 0.1})  # a derated inverter: 30 kW nameplate
    world = SunSpecWorld(FieldWorld(demo_grid("case33bw"), start_step=EVENING), audit, cfg)
    orch = Orchestrator(world, audit=audit)
    orch.step()
    yield orch, world
    world.close()


def test_pv_inverters_get_the_volt_var_curve_and_report_over_modbus(loop: Any) -> None:
    orch, world = loop
    assert world.pv_ids and all(r.accepted for r in world.curve_results)
    cmds = [
        e for e in orch.audit.entries(limit=100, kind="command") if e["what"]["kind"] == "volt_var"
    ]
    assert len(cmds) == len(world.pv_ids)
    assert all(e["result"]["message_id"].startswith("mb-der-pv-") for e in cmds)
    orch.step()
    for d in world.pv_ids:
        assert world.sink.latest(d, "p_kw") is not None and world.sink.latest(d, "v_pu") is not None
    stored = world.sink.store.latest(quantity="p_kw")
    assert set(world.pv_ids) <= set(stored["device_id"])


def test_a_battery_set_point_goes_out_as_704_wset_and_the_field_follows(loop: Any) -> None:
    orch, world = loop
    out = orch.submit(Plan([Action("storage", 1, -0.2)], "drill: discharge", "operator"), "op")
    assert out["status"] == "done"
    e = orch.audit.entries(limit=5, kind="command")[0]  # newest first
    assert e["what"]["device"] == "der-storage-1" and e["what"]["kind"] == "storage_w"
    assert e["status"] == "done" and e["result"]["message_id"].startswith("mb-der-storage-1-")
    assert world.held_storage_mw(1) == pytest.approx(-0.2)
    orch.step()
    assert world.inner.storage_cmd_mw[0] == pytest.approx(-0.2)  # the field's battery follows
    # discharging = injecting: negative in gridpilot's sign (+ consumption)
    assert (world.sink.latest("der-storage-1", "p_kw") or (0, 0))[1] == pytest.approx(-200.0)
    assert "command_rejected:der-storage-1" not in orch.alarms


def test_a_modbus_exception_raises_an_alarm_and_the_loop_replans(loop: Any) -> None:
    orch, world = loop
    out = orch.submit(Plan([Action("storage", 2, -0.15)], "drill: discharge", "operator"), "op")
    assert out["status"] == "done"  # the guard passed it; the device refuses it
    e = orch.audit.entries(limit=5, kind="command")[0]  # newest first
    assert e["what"]["device"] == "der-storage-2" and e["status"] == "failed"
    assert e["result"]["status"] == "exception 3" and e["result"]["message_id"]
    assert "command_rejected:der-storage-2" in world.alarms
    orch.step()
    assert "command_rejected:der-storage-2" in orch.alarms
    ev = [x for x in orch.events if x["kind"] == "command_rejected"]
    assert ev and ev[-1].get("device") == "der-storage-2"
    k = int(orch.grid.storage.index_of(2)[0])
    assert orch.storage_cmd_mw[k] == pytest.approx(0.0)  # plans on what is in effect
    assert world.inner.storage_cmd_mw[k] == pytest.approx(0.0)  # the field never got it
    # a set point the device can follow clears the alarm
    orch.submit(Plan([Action("storage", 2, -0.02)], "drill: discharge", "operator"), "op")
    orch.step()
    assert "command_rejected:der-storage-2" not in orch.alarms


def test_a_volt_var_curve_the_inverters_do_not_adopt_is_an_alarm(loop: Any) -> None:
    orch, world = loop
    before = [list(p) for p in world.ders[world.pv_ids[0]].vv_points]
    res = world.set_volt_var([(105.0, -20.0), (95.0, 20.0)])  # V not increasing
    assert res and all(not r.accepted and r.status == "adopt_failed" for r in res)
    orch.step()
    assert all(f"command_rejected:{d}" in orch.alarms for d in world.pv_ids)
    ev = [x for x in orch.events if x["kind"] == "command_rejected"]
    assert ev and "adopt_failed" in ev[-1]["text"] and ev[-1]["device"] in world.pv_ids
    assert [list(p) for p in world.ders[world.pv_ids[0]].vv_points] == before  # old curve stays
    assert all(r.accepted for r in world.set_volt_var([(90.0, 40.0), (110.0, -40.0)]))
    orch.step()
    assert not any(f"command_rejected:{d}" in orch.alarms for d in world.pv_ids)
    lim = world.set_pv_limit(50.0)
    assert all(r.accepted for r in lim)
    assert np.all([world.ders[d].w <= 0.5 * world.ders[d].spec.w_rtg + 1 for d in world.pv_ids])


def test_a_read_back_mismatch_is_a_refusal_with_an_alarm() -> None:
    from gridpilot.protocols import AdapterRegistry, DeviceCommand
    from gridpilot.protocols.sunspec import Der, DerHost, DerSpec, SunSpecAdapter
    from gridpilot.protocols.sunspec.fieldlink import _Loop

    class Clamping(Der):
        """An inverter that takes a power limit without an exception but keeps at most 80 %."""

        def check_write(self, address: int, values: list[int]) -> Any:
            rc = super().check_write(address, values)
            m = self.image.model(704)
            if rc is None and float(m.WMaxLimPct.cvalue) > 80.0:
                m.WMaxLimPct.cvalue = 80.0
                self.image.put(704, m)
            return rc

    dev_loop = _Loop("test-der")
    host = DerHost([Clamping(DerSpec("inv-clamp", "pv", 10_000, 4_400))])
    ports = dev_loop.run(host.start())
    ad = SunSpecAdapter({"inv-clamp": ("127.0.0.1", ports["inv-clamp"])})
    try:
        assert not ad.start()
        audit = AuditLog(":memory:")
        reg = AdapterRegistry(audit)
        reg.register(ad)
        ok, bad = reg.send([DeviceCommand("inv-clamp", "p_limit_pct", 60.0)]) + reg.send(
            [DeviceCommand("inv-clamp", "p_limit_pct", 95.0)]
        )
        assert ok.accepted
        assert not bad.accepted and bad.status == "readback_mismatch"
        assert "command_rejected:inv-clamp" in reg.alarms
        assert audit.entries(limit=1, kind="command")[0]["status"] == "failed"
    finally:
        ad.stop()
        dev_loop.run(host.stop())
        dev_loop.stop()


def test_cli_demo_with_sunspec_and_ocpp_runs_and_refuses_unknown_protocols() -> None:
    from typer.testing import CliRunner

    from gridpilot.cli import _register, app

    _register()
    for protos in ("sunspec", "ocpp,sunspec"):
        r = CliRunner().invoke(app, ["demo", "--no-serve", "--steps", "3", "--protocols", protos])
        assert r.exit_code == 0, r.output
        assert '"audit_chain_ok": true' in r.output
    r = CliRunner().invoke(app, ["demo", "--no-serve", "--protocols", "modbus-rtu"])
    assert r.exit_code == 2 and "protocols" in r.output
    r = CliRunner().invoke(app, ["demo", "--no-serve", "--protocols", "sunspec", "--world", "sim"])
    assert r.exit_code == 2 and "protocols" in r.output
