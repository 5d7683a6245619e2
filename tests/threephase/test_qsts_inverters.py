"""QSTS with smart inverters (``InverterTwin``): the compiled step loop, with the inverters'
control iterations inside it, against the Python runner (the reference)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridpilot.control.cvr_cli import day_shape
from gridpilot.control.cvr_fleet import FleetOptions, with_pv_fleet
from gridpilot.errors import ConvergenceError
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import ThreePhaseGrid, voltwatt_curve
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.inverters import InverterTwin
from gridpilot.twin.unbalanced.qsts_fast import unsupported
from gridpilot.twin.unbalanced.qsts_stats import QstsResult
from gridpilot.twin.unbalanced.reference import add_shape, reset_taps

STEPS = 48
# a voltage-controlled bank beside the PV, so capacitor steps interleave with the inverters
CAPCONTROL = ("new capcontrol.va capacitor=cap1 element=line.692675 terminal=1 type=voltage"
              " ptratio=20 ptphase=min onsetting=119 offsetting=121.5 delay=60 delayoff=60"
              " deadtime=0")  # fmt: skip


def _grid(name: str, fleet: FleetOptions, extra: tuple[str, ...] = ()) -> ThreePhaseGrid:
    s = DssSession()
    s.compile(feeder_master(name))
    reset_taps(s)
    for cmd in extra:
        s.command(cmd)
    add_shape(s, "day", day_shape(STEPS, 15.0), 15.0)
    return with_pv_fleet(grid_from_session(s, name), STEPS, opts=fleet)


def _tight(g: ThreePhaseGrid, **kw: object) -> ThreePhaseGrid:
    """Tolerances tight enough that both engines settle on the curves' fixed point."""
    ctl = [dataclasses.replace(c, var_tol=1e-7, v_tol=1e-9, **kw) for c in g.invcontrols]  # type: ignore[arg-type]
    return dataclasses.replace(g, invcontrols=ctl)


def _both(g: ThreePhaseGrid) -> tuple[QstsResult, QstsResult]:
    fast = InverterTwin(g)
    assert unsupported(fast) is None  # engine="auto" runs it compiled
    a = fast.qsts(STEPS, 900.0, keep_taps=True)
    b = InverterTwin(g).qsts(STEPS, 900.0, keep_taps=True, engine="python")
    assert a.iterations > 0 and b.iterations == 0  # the compiled loop counts its iterations
    return a, b


def _assert_same(a: QstsResult, b: QstsResult, v_pu: float, kw: float) -> None:
    assert a.tap_ops == b.tap_ops and a.cap_ops == b.cap_ops
    for name, series in b.tap_series.items():
        np.testing.assert_array_equal(a.tap_series[name], series)
    for name, series in b.cap_series.items():
        np.testing.assert_array_equal(a.cap_series[name], series)
    np.testing.assert_allclose(a.vmin_pu, b.vmin_pu, rtol=0, atol=v_pu)
    np.testing.assert_allclose(a.vmax_pu, b.vmax_pu, rtol=0, atol=v_pu)
    assert list(a.inverter_p_kw) == list(b.inverter_p_kw) and a.inverter_q_kvar
    for name, p in b.inverter_p_kw.items():
        np.testing.assert_allclose(a.inverter_p_kw[name], p, rtol=0, atol=kw, err_msg=name)
        np.testing.assert_allclose(a.inverter_q_kvar[name], b.inverter_q_kvar[name], rtol=0,
                                   atol=kw, err_msg=name)  # fmt: skip
    np.testing.assert_allclose(a.losses_kw, b.losses_kw, rtol=0, atol=kw)


def test_ieee13_volt_var_volt_watt_and_capacitor_match_the_python_runner() -> None:
    g = _grid("ieee13", FleetOptions(share=1.0, kw_range=(40.0, 120.0), mode="vv_vw"),
              (CAPCONTROL,))  # fmt: skip
    g = _tight(g, voltwatt=voltwatt_curve(1.0, 1.04, 0.2))  # low enough to curtail
    a, b = _both(g)
    _assert_same(a, b, 1e-6, 0.01)
    assert sum(a.tap_ops.values()) > 0 and sum(a.cap_ops.values()) > 0
    q = np.array(list(a.inverter_q_kvar.values()))
    p = np.array(list(a.inverter_p_kw.values()))
    sun = g.loadshapes["pv_day"].mult
    avail = np.array([-ld.kw for ld in g.loads if ld.kind == "pv"])[:, None] * sun
    assert np.max(np.abs(q)) > 5.0  # volt-var acts
    assert np.min(p[:, sun > 0.5] / avail[:, sun > 0.5]) < 0.9  # volt-watt curtails


@pytest.mark.parametrize("tight", [True, False])
def test_ieee123_seeded_fleet_matches_the_python_runner(tight: bool) -> None:
    """The bench's fleet (40 % of loads, 4-10 kW, Category B volt-var). With the default
    tolerances each engine stops within ``var_tol`` of the curve (from different starting
    points: the Python runner settles a block of steps together), so they agree to a few
    ``var_tol × kvar_max``; the operations are still the same."""
    g = _grid("ieee123", FleetOptions())
    a, b = _both(_tight(g) if tight else g)
    qmax = max(r.kva for r in g.invcontrols[0].inverters)
    _assert_same(a, b, 1e-6 if tight else 1e-5, 0.01 if tight else 5 * 1e-3 * qmax)
    assert sum(a.tap_ops.values()) > 0
    assert max(np.max(np.abs(q)) for q in a.inverter_q_kvar.values()) > 0.5


def test_inverters_that_do_not_settle_are_named_by_both_engines() -> None:
    g = _grid("ieee13", FleetOptions(share=0.5, kw_range=(40.0, 120.0)))
    g = _tight(g, max_iter=1)  # one iteration can never show a settled voltage
    for engine in ("compiled", "python"):
        with pytest.raises(ConvergenceError, match="inverter controls did not settle"):
            InverterTwin(g).qsts(4, 900.0, engine=engine)


def test_compiled_run_is_the_same_in_any_chunks_and_leaves_the_last_state() -> None:
    g = _grid("ieee13", FleetOptions(share=1.0, kw_range=(40.0, 120.0)))
    tw = InverterTwin(g)
    r = tw.qsts(STEPS, 900.0, keep_taps=True)
    assert tw.last is not None and tw.control_iterations > STEPS
    for i, name in enumerate(tw.last.names):
        assert tw.last.q_kvar[i, 0] == r.inverter_q_kvar[name][-1]
    c = InverterTwin(g).qsts(STEPS, 900.0, keep_taps=True, chunk=5)
    assert c.tap_ops == r.tap_ops and sum(r.tap_ops.values()) > 0
    np.testing.assert_array_equal(c.vmax_pu, r.vmax_pu)
    for name, q in r.inverter_q_kvar.items():
        np.testing.assert_array_equal(c.inverter_q_kvar[name], q)


def test_cli_qsts_summary_runs_the_inverters() -> None:
    from gridpilot.twin.unbalanced.cli import qsts_summary

    g = _grid("ieee13", FleetOptions(share=1.0, kw_range=(40.0, 120.0)))
    out = qsts_summary(g, STEPS, "15min", False)
    ref = InverterTwin(g).qsts(STEPS, 900.0).summary()
    keys = ("tap_ops", "vmin_pu", "vmax_pu", "losses_kwh")
    assert [out[k] for k in keys] == [ref[k] for k in keys]
    plain = UnbalancedTwin(g).qsts(STEPS, 900.0).summary()  # the PV uncontrolled
    assert abs(plain["losses_kwh"] - out["losses_kwh"]) > 1.0
