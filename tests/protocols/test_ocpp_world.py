"""The loop with its EV stations behind OCPP: commands audited with OCPP message ids, a station
that rejects raises an alarm and the loop plans on what is in effect (separate process, 127.0.0.1)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from gridpilot.agent import Action, AuditLog, FieldWorld, Orchestrator, Plan, demo_grid
from gridpilot.protocols.ocpp.fieldlink import OcppWorld

EVENING = 200 * 96 + 17 * 4


@pytest.fixture(scope="module")
def loop() -> Any:
    audit = AuditLog(":memory:")
    world = OcppWorld(
        FieldWorld(demo_grid("case33bw"), start_step=EVENING), audit=audit, refuse=(2,), meter_s=0.2
    )
    orch = Orchestrator(world, audit=audit)
    yield orch, world
    world.close()


def _step_until(orch: Orchestrator, done: Any, timeout_s: float = 20.0) -> None:
    """Step the loop until ``done()`` holds: the stations report every 0.2 s from their own
    process, which a loaded machine can delay well past a fixed sleep."""
    deadline = time.monotonic() + timeout_s
    while True:
        time.sleep(0.3)
        orch.step()
        if done() or time.monotonic() > deadline:
            return


def _reported(world: OcppWorld) -> np.ndarray:
    return np.array([(world.sink.latest(s, "p_kw") or (0, np.nan))[1] for s in world.station_ids])


def test_ev_stations_report_over_ocpp_into_the_loop(loop: Any) -> None:
    orch, world = loop
    orch.step()
    everyone = set(world.station_ids) | set(world.home_ids)

    def all_reported() -> bool:
        stored = world.sink.store.latest(quantity="p_kw")
        return bool(np.isfinite(world.reported_mw).all()) and set(stored["device_id"]) == everyone

    _step_until(orch, all_reported)
    assert np.isfinite(world.reported_mw).all(), "every station's MeterValues reached the loop"
    assert np.array_equal(orch.last.ev_p_mw, world.reported_mw)  # the loop sees what OCPP said
    assert np.isfinite(_reported(world)).all()
    stored = world.sink.store.latest(quantity="p_kw")  # landed in the telemetry store too
    # the grid's stations and the household EVs' home charge points
    assert set(stored["device_id"]) == everyone


def test_an_ev_command_goes_out_as_profiles_and_a_rejection_replans(loop: Any) -> None:
    orch, world = loop
    out = orch.submit(Plan([Action("ev", None, 0.5)], "drill: halve EV charging", "operator"), "op")
    assert out["status"] == "done"  # the guard and the plan's audit entry are unchanged
    cmds = orch.audit.entries(limit=50, kind="command")
    assert len(cmds) == len(world.station_ids)
    assert all(e["result"]["message_id"] for e in cmds)
    bad = [e for e in cmds if e["status"] == "failed"]
    assert [e["what"]["device"] for e in bad] == [world.station_ids[2]]
    orch.step()
    assert f"command_rejected:{world.station_ids[2]}" in orch.alarms
    assert any(e["kind"] == "command_rejected" for e in orch.events)
    assert orch.ev_factor == pytest.approx((7 * 0.5 + 1.0) / 8)  # what is in effect, not 0.5
    ok = np.arange(len(world.station_ids)) != 2
    _step_until(
        orch, lambda: bool(np.all(_reported(world)[ok] * 1e3 <= 0.5 * world.p_max_w[ok] + 1.0))
    )
    rep = _reported(world) * 1e3  # W
    assert np.all(rep[ok] <= 0.5 * world.p_max_w[ok] + 1.0)


def test_cli_demo_with_ocpp_evs_runs_and_refuses_the_sim_world() -> None:
    from typer.testing import CliRunner

    from gridpilot.cli import _register, app

    _register()
    r = CliRunner().invoke(app, ["demo", "--no-serve", "--steps", "3", "--ev-protocol", "ocpp"])
    assert r.exit_code == 0, r.output
    assert '"audit_chain_ok": true' in r.output
    r = CliRunner().invoke(app, ["demo", "--no-serve", "--ev-protocol", "ocpp", "--world", "sim"])
    assert r.exit_code == 2 and "ev_protocol" in r.output
