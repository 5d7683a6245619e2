"""Smart inverters (IEEE 1547-2018 volt-var / volt-watt) against OpenDSS's InvControl."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import (
    InverterControl,
    InverterRating,
    voltvar_curve,
    voltwatt_curve,
)
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced.inverters import InverterTwin
from gridpilot.twin.unbalanced.reference import dss_voltages, reset_taps

# name, bus, phases, kV, kVA, Pmpp: two three-phase and two single-phase PV on ieee13
PV = [("pv675", "675.1.2.3", 3, 4.16, 900, 800), ("pv652", "652.1", 1, 2.4018, 330, 300),
      ("pv611", "611.3", 1, 2.4018, 330, 300), ("pv634", "634.1.2.3", 3, 0.48, 200, 180)]  # fmt: skip
DSS_MODE = {"voltvar": "mode=voltvar", "voltwatt": "mode=voltwatt", "vv_vw": "combimode=vv_vw"}


def _xy(name: str, v: tuple[float, ...], y: tuple[float, ...]) -> str:
    """An OpenDSS XYcurve held flat beyond the end points (OpenDSS extrapolates)."""
    xs = " ".join(str(x) for x in (0.5, *v, 1.5))
    ys = " ".join(str(x) for x in (y[0], *y, y[-1]))
    return f"new xycurve.{name} npts={len(v) + 2} xarray=[{xs}] yarray=[{ys}]"


def _session(mode: str, src_pu: float) -> DssSession:
    s = DssSession()
    s.compile(feeder_master("ieee13"))
    s.command(f"vsource.source.pu={src_pu}")
    s.command("batchedit regcontrol..* enabled=no")
    s.command("batchedit capcontrol..* enabled=no")
    reset_taps(s)
    for n, bus, ph, kv, kva, pmpp in PV:
        s.command(f"new pvsystem.{n} phases={ph} bus1={bus} kv={kv} kva={kva} pmpp={pmpp} "
                  "irradiance=1 %cutin=0.1 %cutout=0.1")  # fmt: skip
    vv, vw = voltvar_curve("B"), voltwatt_curve()
    s.command(_xy("vv", vv.v, vv.y))
    s.command(_xy("vw", vw.v, vw.y))
    s.command(f"new invcontrol.ic {DSS_MODE[mode]} vvc_curve1=vv voltwatt_curve=vw "
              "RefReactivePower=VARMAX deltaQ_factor=0.3 deltaP_factor=0.3 "
              "varchangetolerance=1e-5 voltagechangetolerance=1e-6 activepchangetolerance=1e-5")  # fmt: skip
    for cmd in ("set controlmode=static", "set tolerance=1e-10", "set maxiterations=1000",
                "set maxcontroliter=1000"):  # fmt: skip
        s.command(cmd)
    return s


@pytest.mark.parametrize(("mode", "src_pu"), [("voltvar", 1.06), ("voltvar", 0.93),
                                              ("voltwatt", 1.09), ("vv_vw", 1.07)])  # fmt: skip
def test_inverter_curves_match_opendss_invcontrol(mode: str, src_pu: float) -> None:
    s = _session(mode, src_pu)
    s.circuit.Solution.Solve()
    assert s.circuit.Solution.Converged
    g = grid_from_session(s, "ieee13")  # the importer maps the InvControl
    assert len(g.invcontrols) == 1 and g.invcontrols[0].mode == mode
    ctl = dataclasses.replace(g.invcontrols[0], var_tol=1e-7, v_tol=1e-9)
    tw = InverterTwin(g, controls=[ctl])
    r = tw.powerflow("off")
    ref = dss_voltages(s)
    dv = max(abs(abs(x) - abs(ref[f"{b}.{k}"])) / vb
             for (b, k), x, vb in zip(r.nodes, r.v, r.vbase_v, strict=True))  # fmt: skip
    assert dv < 1e-5
    inj = tw.injected(r.v[:, None], tw.base_powers())[:, 0]
    c = s.circuit
    for name, ours in zip(tw.last.names, inj, strict=True):  # type: ignore[union-attr]
        c.SetActiveElement(name.replace("pv.", "pvsystem."))
        pw = -np.asarray(c.ActiveCktElement.Powers)
        assert abs(ours.real - pw[0::2].sum()) < 0.05, name  # kW
        assert abs(ours.imag - pw[1::2].sum()) < 0.05, name  # kvar
    st = tw.last
    assert st is not None
    if mode != "voltwatt":  # the curves act: reactive power far from zero
        assert np.max(np.abs(st.q_kvar)) > 50
    if mode != "voltvar":  # active power curtailed below Pmpp
        assert np.min(st.p_kw[:, 0] / np.array([p[5] for p in PV])) < 0.9


def test_no_inverters_is_the_plain_twin_and_bad_input_is_named() -> None:
    s = _session("voltvar", 1.0)
    s.circuit.Solution.Solve()
    g = grid_from_session(s, "ieee13")
    plain = InverterTwin(dataclasses.replace(g, invcontrols=[])).powerflow("off")
    with pytest.raises(ValidationError, match="nosuch"):
        InverterTwin(g, controls=[InverterControl("x", [InverterRating("nosuch", 10.0)])])
    with pytest.raises(ValidationError, match="mode"):
        InverterControl("x", [InverterRating("pv652", 10.0)], mode="watt-pf").validate()
    with pytest.raises(ValidationError, match="category"):
        voltvar_curve("C")
    with pytest.raises(ValidationError, match="voltages must rise"):
        voltvar_curve("B", v1=1.0, v2=0.9)
    with pytest.raises(ValidationError, match="kva"):
        InverterControl("x", [InverterRating("pv652", -1.0)]).validate()
    assert plain.v.shape == InverterTwin(g).powerflow("off").v.shape


def test_importer_warns_what_it_does_not_model() -> None:
    s = DssSession()
    s.compile(feeder_master("ieee13"))
    s.command("new pvsystem.p1 phases=1 bus1=652.1 kv=2.4018 kva=330 pmpp=300")
    s.command("new pvsystem.p2 phases=1 bus1=611.3 kv=2.4018 kva=330 pmpp=300 kvarmax=150")
    s.command("new xycurve.c npts=4 xarray=[0.9 1 1 1.1] yarray=[0.25 0 0 -0.25]")
    s.command("new invcontrol.vv mode=voltvar vvc_curve1=c derlist=[pvsystem.p1]")  # VARAVAL
    s.command("new xycurve.dr npts=2 xarray=[0.9 1.1] yarray=[0.5 -0.5]")
    s.command("new invcontrol.pf mode=dynamicreaccurr derlist=[pvsystem.p2]")
    s.circuit.Solution.Solve()
    g = grid_from_session(s, "ieee13")
    assert [c.name for c in g.invcontrols] == ["vv"]
    assert g.invcontrols[0].inverters[0].kva == 330.0
    text = " ".join(g.warnings)
    assert "VARAVAL" in text and "invcontrol.pf" in text
