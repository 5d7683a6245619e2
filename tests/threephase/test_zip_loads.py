"""A ZIP load (model 8) against OpenDSS where its models switch: below ``vminpu`` and
above ``vmaxpu`` (its constant-current part turns into an admittance as model 5's, its
constant-power part as model 1's) and around its cutoff voltage (a smooth drop-out).
A random feeder found the first: a ZIP load 0.0004 pu under vminpu was 3.7e-6 pu off."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridpilot.errors import ValidationError
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.reference import compare, dss_voltages, tighten


def _feeder(pu: float, kw: float, cutoff: float) -> str:
    return "\n".join([
        "clear",
        f"new circuit.zip basekv=12.47 pu={pu} r1=0.01 x1=0.05 r0=0.02 x0=0.1",
        "new linecode.lc1 nphases=1 r1=0.5 x1=0.5 r0=1.5 x0=1.5 c1=0 c0=4 units=km",
        "new line.l1 phases=1 bus1=sourcebus.1 bus2=b1.1 linecode=lc1 length=2 units=km",
        f"new load.z bus1=b1.1 phases=1 conn=wye kv=7.2 kw={kw} kvar={kw / 3} model=8 "
        f"vminpu=0.95 vmaxpu=1.05 zipv=[0.3 0.3 0.4 0.2 0.3 0.5 {cutoff}]",
        "new load.p bus1=b1.1 phases=1 conn=wye kv=7.2 kw=5 kvar=0 model=1",
        "set voltagebases=[12.47]",
        "calcvoltagebases",
    ])  # fmt: skip


@pytest.mark.parametrize(
    "pu,kw,cutoff,lo,hi",
    [
        (1.02, 300.0, 0.5, 0.95, 1.05),  # inside the band
        (0.96, 400.0, 0.5, 0.945, 0.95),  # just below vminpu (the random feeder's case)
        (0.94, 200.0, 0.5, 0.9, 0.945),  # well below
        (1.09, 50.0, 0.5, 1.05, 1.1),  # above vmaxpu
        (0.95, 50.0, 0.94, 0.945, 0.95),  # in the drop-out's tail above the cutoff
        (0.95, 50.0, 0.95, 0.945, 0.95),  # on the drop-out's slope
    ],
)
def test_zip_load_matches_opendss(
    tmp_path: Path, pu: float, kw: float, cutoff: float, lo: float, hi: float
) -> None:
    p = tmp_path / "zip.dss"
    p.write_text(_feeder(pu, kw, cutoff))
    s = DssSession()
    s.compile(p)
    g = grid_from_session(s, "zip", source=str(p))
    tighten(s, "off")
    s.command("solve")
    assert s.circuit.Solution.Converged
    res = UnbalancedTwin(g).powerflow(control_mode="off")
    a = compare(res, dss_voltages(s))
    s.circuit.SetActiveBus("b1")
    vpu = float(s.circuit.ActiveBus.puVmagAngle[0])
    assert lo < vpu < hi  # the load sits where the case means it to
    assert a.max_dv_pu < 1e-8, (vpu, a)


def test_a_zip_load_with_a_nan_or_no_value_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    other = tmp_path / "a_other.dss"  # another script in the folder that defines load.z too
    other.write_text(_feeder(1.0, 10.0, 0.5))
    p = tmp_path / "zip.dss"
    p.write_text(_feeder(1.0, 10.0, 0.5).replace("0.5 0.5]", "0.5 nan]"))
    s = DssSession()
    s.compile(p)
    with pytest.raises(ValidationError) as err:
        grid_from_session(s, "zip", source=str(p))
    msg = str(err.value)
    assert f"{p.resolve()}:5: load.z" in msg and "'zipv'" in msg and "nan" in msg, msg
    assert "a_other" not in msg
    s.compile(tmp_path / "a_other.dss")
    g = grid_from_session(s, "zip", source=str(other))
    g.loads[0].zipv = ()  # model 8 with no shares (OpenDSS: "ZIPV is not set")
    with pytest.raises(ValidationError, match="zipv"):
        g.validate()


def test_an_element_in_a_redirected_file_is_located_there(tmp_path: Path) -> None:
    from gridpilot.model.importers.opendss import locate

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "loads.dss").write_text("! loads\nNew Load.far bus1=b1.1 kw=1\n")
    master = tmp_path / "master.dss"
    master.write_text("clear\nnew circuit.x\nredirect sub/loads.dss\n")
    (tmp_path / "decoy.dss").write_text("new load.far bus1=x\n")  # not read by the master
    assert locate(master, "load.far") == f"{(tmp_path / 'sub' / 'loads.dss').resolve()}:2"
    assert locate(master, "load.none") == ""
