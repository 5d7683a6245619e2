"""MATPOWER import: matrices, unit idioms, transformers, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridpilot.errors import ValidationError
from gridpilot.model import from_matpower, load_grid
from gridpilot.twin import Twin

CASE = """function mpc = tiny
mpc.version = '2';
mpc.baseMVA = 100;
mpc.bus = [
\t1\t3\t0\t0\t0\t0\t1\t1\t0\t110\t1\t1.1\t0.9;
\t2\t1\t0\t0\t0\t0\t1\t1\t0\t20\t1\t1.1\t0.9;
\t3\t1\t5\t1\t0\t0\t1\t1\t0\t20\t1\t1.1\t0.9;   % a load
];
mpc.gen = [
\t1\t0\t0\t10\t-10\t1.02\t100\t1\t10\t0;
\t3\t2\t0\t10\t-10\t1\t100\t1\t10\t0;
];
mpc.branch = [
\t1\t2\t0.002\t0.12\t0\t40\t0\t0\t1\t0\t1;
\t2\t3\t0.05\t0.04\t0.001\t0\t0\t0\t0\t0\t1;
];
"""


def test_tiny_case_maps_to_components() -> None:
    g = from_matpower(CASE, "tiny")
    assert len(g.bus) == 3 and len(g.transformer) == 1 and len(g.line) == 1
    assert g.source.row(1)["vm_pu"] == pytest.approx(1.02)
    assert g.generator.row(2)["p_mw"] == 2.0
    assert g.load.row(3)["p_mw"] == 5.0
    # line impedance back in ohms on the 20 kV base: 0.05 pu * 400/100 ohm
    assert g.line.row(2)["r_ohm_per_km"] == pytest.approx(0.05 * 20**2 / 100)
    r = Twin(g).powerflow()
    assert r.converged and 0.9 < r.vmin_pu < 1.02


def test_unit_idioms_of_distribution_cases() -> None:
    g = load_grid("case69")
    assert g.meta["import_notes"] == [
        "branch r, x converted from ohms (case's own conversion)",
        "loads converted from kW (case's own conversion)",
    ]
    assert g.line.row(5)["r_ohm_per_km"] == pytest.approx(0.366)


def test_bad_matpower_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"matpower: field 'branch'.*matrix not found"):
        from_matpower(CASE.replace("mpc.branch", "mpc.other"))
    with pytest.raises(ValidationError, match=r"matpower: field 'bus'.*row 2 is not numeric"):
        from_matpower(CASE.replace("\t2\t1\t0", "\t2\tx\t0", 1))
    with pytest.raises(ValidationError, match="does not exist"):
        from_matpower(tmp_path / "missing.m")
    with pytest.raises(ValidationError, match="no reference bus"):
        from_matpower(CASE.replace("\t1\t3\t0", "\t1\t1\t0", 1))


RING = """function mpc = ring
mpc.version = '2';
mpc.baseMVA = 10;
mpc.bus = [
\t1\t3\t0\t0\t0\t0\t1\t1\t0\t20\t1\t1.1\t0.9;
\t2\t1\t1\t0.2\t0\t0\t1\t1\t0\t20\t1\t1.1\t0.9;
\t3\t1\t1\t0.2\t0\t0\t1\t1\t0\t20\t1\t1.1\t0.9;
\t4\t1\t1\t0.2\t0\t0\t1\t1\t0\t20\t1\t1.1\t0.9;
];
mpc.gen = [
\t1\t0\t0\t10\t-10\t1.0\t100\t1\t10\t0;
];
mpc.branch = [
\t1\t2\t0.01\t0.01\t0\t0\t0\t0\t0\t0\t1;
\t2\t3\t0.01\t0.01\t0\t0\t0\t0\t0\t0\t1;
\t1\t4\t0.01\t0.01\t0\t0\t0\t0\t0\t0\t1;
\t4\t3\t0.01\t0.01\t0\t0\t0\t0\t0\t0\t0;   % a normally-open tie
];
"""


def test_status_0_lines_become_open_ties_with_a_switch_on_every_line() -> None:
    g = from_matpower(RING, "ring")
    assert len(g.switch) == len(g.line) == 4 and g.line["in_service"].all()
    sw = g.switch
    assert sw.ids[~sw["closed"]].tolist() == [4] and sw["normally_open"].tolist() == [
        False,
        False,
        False,
        True,
    ]
    assert sw["remote"].all() and sw["kind"][sw.index_of([1, 3])].tolist() == [0, 0]  # breakers
    assert "open ties" in g.meta["switches"]
    r = Twin(g).powerflow()
    assert r.converged and r.energised.all()
    # 'none' keeps MATPOWER's own meaning: the status-0 line out of service, no switches
    g0 = from_matpower(RING, "ring", switches="none")
    assert len(g0.switch) == 0 and g0.line["in_service"].tolist() == [True, True, True, False]
    # a case without status-0 lines gets no switches, and says so
    g1 = from_matpower(CASE, "tiny")
    assert len(g1.switch) == 0 and g1.meta["switches"].startswith("none")
    with pytest.raises(ValidationError, match="switches"):
        from_matpower(RING, "ring", switches="some")


def test_unknown_bus_in_a_branch_is_named_as_such() -> None:
    bad = RING.replace("\t4\t3\t0.01", "\t4\t9\t0.01")
    with pytest.raises(ValidationError) as exc:
        from_matpower(bad, "ring")
    msg = str(exc.value)
    assert "t_bus" in msg and "9" in msg and "unknown bus" in msg and "branch id 4" in msg
    assert "transformer" not in msg and "nan" not in msg.lower()
    with pytest.raises(ValidationError, match=r"gen.*unknown bus"):
        from_matpower(RING.replace("\t1\t0\t0\t10", "\t7\t0\t0\t10"), "ring")
