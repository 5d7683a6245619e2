"""Unbalanced power flow and static controls against OpenDSS on the IEEE feeders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridpilot.errors import ConvergenceError
from gridpilot.model import load_grid
from gridpilot.model.importers.opendss import DssSession, from_opendss, grid_from_session
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.reference import (
    compare,
    dss_cap_states,
    dss_taps,
    dss_voltages,
    reset_taps,
    tap_numbers,
    tighten,
)

FEEDERS = ["ieee13", "ieee34", "ieee37", pytest.param("ieee123", marks=pytest.mark.slow)]


def _session(name: str) -> DssSession:
    s = DssSession()
    s.compile(feeder_master(name))
    return s


@pytest.mark.parametrize("name", FEEDERS)
def test_snapshot_with_opendss_taps_imposed_agrees(name: str) -> None:
    s = _session(name)
    g = grid_from_session(s, name)  # carries the taps and capacitor states of the script
    tighten(s, "off")
    s.command("solve")
    res = UnbalancedTwin(g).powerflow(control_mode="off")
    a = compare(res, dss_voltages(s))
    assert a.max_dv_pu < 1e-6, a
    assert a.max_dangle_deg < 1e-4, a


@pytest.mark.parametrize("name", FEEDERS)
def test_static_controls_reach_opendss_taps_and_voltages(name: str) -> None:
    s = _session(name)
    reset_taps(s)
    g = grid_from_session(s, name)
    tighten(s, "static")
    s.command("solve")
    res = UnbalancedTwin(g).powerflow(control_mode="static")
    assert tap_numbers(res) == dss_taps(s)
    assert res.cap_states == dss_cap_states(s)
    a = compare(res, dss_voltages(s))
    assert a.max_dv_pu < 1e-6 and a.max_dangle_deg < 1e-4, a


def test_regulator_that_must_tap_ends_in_band() -> None:
    g = load_grid("ieee13")
    tw = UnbalancedTwin(g)
    for r in tw.regs:
        tw.set_tap(r.ctl.name, 1.0)
    before = tw.powerflow(control_mode="off")
    after = tw.powerflow(control_mode="static")
    assert all(abs(t - 1.0) > 0.01 for t in after.taps.values())  # every regulator tapped up
    from gridpilot.twin.unbalanced.controls import reg_control_voltage

    for r in tw.regs:
        vact = float(reg_control_voltage(r, tw.net, after.v[:, None])[0])
        assert abs(vact - r.ctl.vreg_v) <= r.ctl.band_v / 2
    assert after.v_pu.min() > before.v_pu.min()
    # the grid object itself is untouched by the twin's control actions
    assert {t.name: t.windings[1].tap for t in load_grid("ieee13").transformers} == {
        t.name: t.windings[1].tap for t in g.transformers
    }


def test_settle_is_the_static_control_mode_and_acts_filters_the_controls() -> None:
    """``UnbalancedTwin.settle`` (what ``powerflow("static")`` and the switching solver run):
    no control acts when ``acts`` refuses them all, ``max_rounds`` bounds the rounds, and
    settling from the solved state reaches the static power flow's taps and voltages."""
    g = load_grid("ieee13")

    def low_taps() -> UnbalancedTwin:
        tw = UnbalancedTwin(g)
        for r in tw.regs:
            tw.set_tap(r.ctl.name, 1.0)
        return tw

    tw = low_taps()
    s = tw.base_powers()

    def resolve(v0: np.ndarray) -> tuple[np.ndarray, int]:
        return tw.solve(s, v0)

    v, _ = tw.solve(s)
    taps0 = tw.taps()
    same, iters, rounds = tw.settle(v, resolve, acts=lambda key: False)
    assert (same is v, iters, rounds) == (True, 0, 0) and tw.taps() == taps0
    with pytest.raises(ConvergenceError, match="did not settle in 0 rounds"):
        tw.settle(v, resolve, max_rounds=0)  # the regulators want to tap: one round is needed
    assert tw.taps() == taps0
    _, _, caps_only = tw.settle(v, resolve, acts=lambda key: key[0] == "cap")
    assert tw.taps() == taps0  # the regulators were not allowed to act
    tw = low_taps()
    v, _ = tw.solve(s)
    settled, _, rounds = tw.settle(v, resolve)
    ref = low_taps().powerflow(control_mode="static")
    assert rounds == ref.control_iterations > caps_only
    assert tw.taps() == ref.taps and tw.cap_states() == ref.cap_states
    assert np.abs(settled[:, 0] - ref.v).max() < 1e-9 * np.abs(ref.v).max()


CAP_FEEDER = """clear
new circuit.c basekv=12.47 pu=1.0 r1=0 x1=0.001 r0=0 x0=0.001
new linecode.lc nphases=3 r1=0.3 x1=0.6 r0=0.6 x0=1.8 c1=0 c0=0 units=km
new line.main bus1=sourcebus bus2=b1 linecode=lc length=8 units=km
new line.lat bus1=b1 bus2=b2 linecode=lc length=4 units=km
new load.big bus1=b2 phases=3 kv=12.47 kw=4000 kvar=2500 model=1
new capacitor.c1 bus1=b2 phases=3 kv=12.47 kvar=1200 states=[0]
new capcontrol.cc1 capacitor=c1 element=line.lat terminal=1 type=voltage ptratio=60
~ onsetting=118 offsetting=126 delay=30 delayoff=30
set voltagebases=[12.47]
calcvoltagebases
"""


def test_capacitor_that_must_switch_closes_as_opendss_does(tmp_path: Path) -> None:
    p = tmp_path / "cap.dss"
    p.write_text(CAP_FEEDER)
    g = from_opendss(p)
    off = UnbalancedTwin(g).powerflow(control_mode="off")
    assert off.v_pu.min() < 118 * 60 / 7200  # below the ON setting with the bank open
    res = UnbalancedTwin(g).powerflow(control_mode="static")
    assert res.cap_states["c1"] == [1]
    assert res.v_pu.min() > off.v_pu.min()
    s = DssSession()
    s.compile(p)
    tighten(s, "static")
    s.command("solve")
    assert dss_cap_states(s)["c1"] == [1]
    a = compare(res, dss_voltages(s))
    assert a.max_dv_pu < 1e-6, a


def test_result_views_and_summary() -> None:
    res = UnbalancedTwin(load_grid("ieee13")).powerflow()
    df = res.nodes_df()
    assert len(df) == 41 and set(df.columns) >= {"bus", "phase", "v_pu", "angle_deg"}
    s = res.summary()
    assert s["vmin_pu"] == pytest.approx(df["v_pu"].min(), abs=1e-6)
    assert s["vmin_node"].split(".")[0] in set(df["bus"])
    assert 0 < s["max_unbalance_pct"] < 10
    assert s["losses_kw"] == pytest.approx(res.losses_kw, abs=1e-3)
    br = res.branches_df()
    assert (br["i_a"] >= 0).all() and np.isfinite(br["i_a"]).all()


def test_losses_match_opendss() -> None:
    s = _session("ieee13")
    g = grid_from_session(s, "ieee13")
    tighten(s, "off")
    s.command("solve")
    res = UnbalancedTwin(g).powerflow(control_mode="off")
    ref_kw = s.circuit.Losses[0] / 1e3
    assert res.losses_kw == pytest.approx(ref_kw, rel=1e-5)


def test_anderson_acceleration_reaches_the_same_point_in_fewer_iterations() -> None:
    from gridpilot.twin.unbalanced import SolveOptions

    g = load_grid("ieee34")
    plain = UnbalancedTwin(g, SolveOptions(accel=0)).powerflow(control_mode="off")
    fast = UnbalancedTwin(g, SolveOptions(accel=4)).powerflow(control_mode="off")
    assert np.abs(plain.v_pu - fast.v_pu).max() < 1e-7
    assert fast.iterations < plain.iterations


DER_FEEDER = """clear
new circuit.d basekv=12.47 pu=1.0 r1=0 x1=0.001 r0=0 x0=0.001
new linecode.lc nphases=3 r1=0.3 x1=0.6 r0=0.6 x0=1.8 c1=0 c0=0 units=km
new linecode.lc1 nphases=1 r1=0.5 x1=0.7 r0=0.5 x0=0.7 c1=0 c0=0 units=km
new line.main bus1=sourcebus bus2=b1 linecode=lc length=3 units=km
new line.lat bus1=b1.2 bus2=b2.2 phases=1 linecode=lc1 length=1 units=km
new load.l3 bus1=b1 phases=3 kv=12.47 kw=1500 kvar=500 model=1
new load.l1 bus1=b2.2 phases=1 kv=7.2 kw=200 kvar=50 model=1
new generator.g1 bus1=b1 phases=3 kv=12.47 kw=600 kvar=100 model=1
new pvsystem.pv1 bus1=b2.2 phases=1 kv=7.2 kva=150 pmpp=120 irradiance=0.8 pf=1
new storage.st1 bus1=b1 phases=3 kv=12.47 kwrated=300 kwhrated=1000 state=idling
set voltagebases=[12.47]
calcvoltagebases
"""


def test_generator_pv_and_storage_on_their_phases_agree_with_opendss(tmp_path: Path) -> None:
    p = tmp_path / "der.dss"
    p.write_text(DER_FEEDER)
    s = DssSession()
    s.compile(p)
    g = grid_from_session(s, "der")
    kinds = {ld.kind for ld in g.loads}
    assert {"generator", "pv", "storage"} <= kinds
    pv = next(ld for ld in g.loads if ld.kind == "pv")
    assert pv.terminal.nodes[0] == 2 and pv.kw == pytest.approx(-96.0)
    tighten(s, "off")
    s.command("solve")
    res = UnbalancedTwin(g).powerflow(control_mode="off")
    a = compare(res, dss_voltages(s))
    assert a.max_dv_pu < 1e-6, a
