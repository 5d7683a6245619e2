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
