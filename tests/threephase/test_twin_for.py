"""Studies of a feeder run its own smart inverters (``twin_for``): the CLI snapshot, the
``Twin`` facade, the API's feeder snapshot, CVR and the agent's three-phase physics."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from gridpilot.control.cvr_fleet import FleetOptions, with_pv_fleet
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.builtin import ieee_feeder
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.inverters import InverterTwin, has_inverters, twin_for

FLEET = FleetOptions(share=1.0, kw_range=(40.0, 120.0), mode="vv_vw")


@pytest.fixture(scope="module")
def grid() -> ThreePhaseGrid:
    return with_pv_fleet(ieee_feeder("ieee13"), 4, opts=FLEET)


def _fixed_pv(g: ThreePhaseGrid, tw: InverterTwin) -> ThreePhaseGrid:
    """``g`` without InvControls, each PV fixed at the P and Q ``tw`` settled on."""
    assert tw.last is not None
    pq = {n.split(".", 1)[1]: (p, q) for n, p, q in
          zip(tw.last.names, tw.last.p_kw[:, 0], tw.last.q_kvar[:, 0], strict=True)}  # fmt: skip
    loads = [
        dataclasses.replace(ld, kw=-pq[ld.name][0], kvar=-pq[ld.name][1], yearly=None)
        if ld.name in pq else ld
        for ld in g.loads
    ]  # fmt: skip
    return dataclasses.replace(g, loads=loads, invcontrols=[])


def test_twin_for_picks_the_inverter_twin_only_where_the_grid_has_invcontrols(
    grid: ThreePhaseGrid,
) -> None:
    plain = ieee_feeder("ieee13")
    assert has_inverters(grid) and not has_inverters(plain)
    assert type(twin_for(grid)) is InverterTwin and type(twin_for(plain)) is UnbalancedTwin
    assert type(twin_for(grid, inverters=False)) is UnbalancedTwin
    off = [dataclasses.replace(c, enabled=False) for c in grid.invcontrols]
    assert type(twin_for(dataclasses.replace(grid, invcontrols=off))) is UnbalancedTwin
    from gridpilot.twin import Twin

    assert type(Twin(grid)) is InverterTwin and type(Twin(plain)) is UnbalancedTwin


def test_snapshot_losses_count_the_settled_inverter_powers(grid: ThreePhaseGrid) -> None:
    tw = InverterTwin(grid)
    r = tw.powerflow("off")
    ref = UnbalancedTwin(_fixed_pv(grid, tw)).powerflow("off")
    np.testing.assert_allclose(np.abs(r.v), np.abs(ref.v), rtol=1e-5)
    assert r.losses_kw == pytest.approx(ref.losses_kw, rel=1e-4)
    assert r.losses_kvar == pytest.approx(ref.losses_kvar, rel=1e-4)
    assert np.max(np.abs(tw.last.q_kvar)) > 5.0  # type: ignore[union-attr]


def test_cli_powerflow_and_api_snapshot_run_the_inverters(grid: ThreePhaseGrid) -> None:
    from gridpilot.api.feeder3p import FeederSource
    from gridpilot.twin.unbalanced.cli import powerflow_summary

    out = powerflow_summary(grid)
    ref = InverterTwin(grid).powerflow("static").summary()
    plain = UnbalancedTwin(grid).powerflow("static").summary()
    assert out["losses_kw"] == ref["losses_kw"] != plain["losses_kw"]
    res, where = FeederSource(grid).result()
    assert where == "twin" and res.losses_kw == pytest.approx(ref["losses_kw"], abs=1e-3)


def test_agent_physics_runs_the_inverters(grid: ThreePhaseGrid) -> None:
    from gridpilot.agent.phasephysics import PhasePhysics
    from gridpilot.model.threephase.balanced import balanced_view

    ph = PhasePhysics(grid, balanced_view(grid))
    assert isinstance(ph.compiled(frozenset()).twin, InverterTwin)
    ones = np.ones(len(grid.loads))
    st = ph.solve(frozenset(), ones, ones, 0.0)  # no control time passes: taps stay
    ref = InverterTwin(grid).powerflow("off")
    plain = UnbalancedTwin(grid).powerflow("off")
    assert st.result.losses_kw == pytest.approx(ref.losses_kw, rel=1e-4)
    assert np.abs(plain.v_pu - ref.v_pu).max() > 1e-3  # the check has power
    np.testing.assert_allclose(st.result.v_pu, ref.v_pu, rtol=0, atol=1e-6)


def test_switched_snapshot_runs_the_live_inverters(grid: ThreePhaseGrid) -> None:
    from gridpilot.twin.unbalanced import solve_switched

    sw = solve_switched(
        grid, {"671692": False}, control_mode="off"
    )  # the PV beyond the switch is dead
    assert {"692", "675a"} <= set(sw.dead_loads)  # and fleet_692, fleet_675a beside them
    plain = solve_switched(dataclasses.replace(grid, invcontrols=[]), {"671692": False}, "off")
    live = sw.energised
    assert np.array_equal(live, plain.energised)
    # near 1 pu (the curves' dead band) the live inverters move the voltages a little; a plain
    # twin (before) gave exactly the uncontrolled result
    assert np.abs(sw.result.v_pu[live] - plain.result.v_pu[live]).max() > 1e-4


def test_studies_that_leave_the_inverters_out_say_so(
    grid: ThreePhaseGrid, caplog: pytest.LogCaptureFixture
) -> None:
    from gridpilot.twin.unbalanced import SwitchingSolver

    with caplog.at_level(logging.WARNING):
        SwitchingSolver(ieee_feeder("ieee13"))
        assert "smart inverters" not in caplog.text
        SwitchingSolver(grid)
    assert "switching solver" in caplog.text and "invcontrol fleet left out" in caplog.text
