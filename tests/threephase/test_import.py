"""The OpenDSS importer and the unbalanced model, element by element against OpenDSS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.model import list_grids, load_grid
from gridpilot.model.importers.opendss import from_opendss
from gridpilot.model.threephase import (
    ThreePhaseGrid,
    branch_yprim,
    capacitor_yprim,
    source_yprim,
    transformer_yprim,
)

from .conftest import session_and_grid, yprim_of

SMALL = ["ieee13", "ieee34", "ieee37", "ieee123"]


@pytest.mark.parametrize("name", [*SMALL, pytest.param("ieee8500", marks=pytest.mark.slow)])
def test_counts_match_opendss(name: str) -> None:
    s, g = session_and_grid(name)
    c = s.circuit
    counts = g.counts()
    assert counts.buses == c.NumBuses
    assert counts.nodes == c.NumNodes
    assert counts.by_type["branch"] == c.Lines.Count + c.Reactors.Count
    assert counts.by_type["transformer"] == c.Transformers.Count
    assert counts.by_type["regcontrol"] == c.RegControls.Count
    assert counts.by_type["capacitor"] == c.Capacitors.Count
    assert counts.by_type["capcontrol"] == c.CapControls.Count
    assert counts.by_type.get("load", 0) == c.Loads.Count
    assert sorted(f"{b}.{k}" for b, k in g.nodes()) == sorted(c.AllNodeNames)
    assert g.warnings == []


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


@pytest.mark.parametrize("name", [*SMALL, pytest.param("ieee8500", marks=pytest.mark.slow)])
def test_every_primitive_y_matches_opendss(name: str) -> None:
    """Lines (Kron-reduced matrices), transformers (wye/delta, regulators, centre-tapped
    split-phase units, magnetising and anti-float shunts), capacitors and the source."""
    s, g = session_and_grid(name)
    for b in g.branches:
        cls = "reactor" if b.kind == "reactor" else "line"
        assert _rel(yprim_of(s, f"{cls}.{b.name}"), branch_yprim(b)) < 1e-9, b.name
    for t in g.transformers:
        assert _rel(yprim_of(s, f"transformer.{t.name}"), transformer_yprim(t)) < 1e-12, t.name
    for cap in g.capacitors:
        assert _rel(yprim_of(s, f"capacitor.{cap.name}"), capacitor_yprim(cap)) < 1e-9, cap.name
    assert _rel(yprim_of(s, f"vsource.{g.source.name}"), source_yprim(g.source)[0]) < 1e-9


def test_tap_changes_scale_the_winding_as_opendss_does() -> None:
    s, g = session_and_grid("ieee13")
    t = g.transformer("reg2")
    s.circuit.Transformers.Name = "reg2"
    s.circuit.Transformers.Wdg = 2
    old = s.circuit.Transformers.Tap
    try:
        s.circuit.Transformers.Tap = 1.05625
        s.circuit.Solution.SolveNoControl()  # OpenDSS rebuilds the Yprim on the next solve
        t.windings[1].tap = 1.05625
        assert _rel(yprim_of(s, "transformer.reg2"), transformer_yprim(t)) < 1e-12
    finally:
        s.circuit.Transformers.Tap = old
        s.circuit.Solution.SolveNoControl()
        t.windings[1].tap = old


def test_builtin_feeders_listed_with_bus_and_node_counts() -> None:
    rows = {g.name: g for g in list_grids()}
    for name, nodes in [("ieee13", 41), ("ieee123", 278), ("ieee8500", 8531)]:
        assert rows[name].nodes == nodes
    g = load_grid("ieee13")
    assert isinstance(g, ThreePhaseGrid)
    assert len(g.nodes()) == rows["ieee13"].nodes
    assert g.source.kv_ll == pytest.approx(115.0)


def _write(tmp: Path, name: str, body: str) -> Path:
    p = tmp / name
    p.write_text("clear\nnew circuit.x basekv=12.47\n" + body)
    return p


def test_unknown_element_type_names_file_line_and_type(tmp_path: Path) -> None:
    p = _write(tmp_path, "m.dss", "new line.l1 bus1=sourcebus bus2=b\nnew Foo.bar bus1=b\n")
    with pytest.raises(ValidationError) as e:
        from_opendss(p)
    assert "m.dss" in str(e.value) and "line: 4" in str(e.value) and "Foo" in str(e.value)


def test_missing_redirect_names_file_and_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "m.dss", "redirect nothere.dss\n")
    with pytest.raises(ValidationError, match=r"nothere\.dss.*m\.dss.*line: 3"):
        from_opendss(p)


def test_phase_a_bus_does_not_have_names_element_bus_and_phase(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "m.dss",
        "new line.l1 phases=2 bus1=sourcebus.1.2 bus2=b.1.2\n"
        "new load.ld1 bus1=b.3 phases=1 kv=7.2 kw=10\n",
    )
    with pytest.raises(ValidationError) as e:
        from_opendss(p)
    msg = str(e.value)
    assert "m.dss:4" in msg and "load.ld1" in msg and "b.3" in msg


def test_zero_impedance_loop_names_file_line_and_element(tmp_path: Path) -> None:
    z = "r1=0 x1=0 r0=0 x0=0 c1=0 c0=0"
    p = _write(
        tmp_path,
        "m.dss",
        f"new line.l1 bus1=sourcebus bus2=b {z}\nnew line.l2 bus1=b bus2=sourcebus {z}\n",
    )
    with pytest.raises(ValidationError) as e:
        from_opendss(p)
    assert "m.dss:" in str(e.value) and '"l' in str(e.value)


def test_unmodelled_elements_are_listed_in_one_warning(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "m.dss",
        "new line.l1 bus1=sourcebus bus2=b\nnew load.ld bus1=b kv=12.47 kw=100\n"
        "new energymeter.m1 element=line.l1\nnew isource.i1 bus1=b amps=1\n",
    )
    g = from_opendss(p)
    assert len(g.warnings) == 1
    assert "EnergyMeter" in g.warnings[0] and "Isource" in g.warnings[0]


def test_missing_master_file_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        from_opendss("/nonexistent/Master.dss")


def test_transformer_without_buses_is_a_clear_error() -> None:
    from gridpilot.model.importers.opendss_elements import _transformer

    with pytest.raises(ValidationError, match=r"transformer\.t1: Buses"):
        _transformer({"Name": "T1"}, {})


def test_opendss_json_non_finite_numbers_of_either_sign_read_as_none() -> None:
    """OpenDSS writes an unset value as NaN or -NaN (the sign varies between runs): both parse."""
    from gridpilot.model.importers.opendss import parse_dss_json

    text = (
        '{"a": -NaN, "b": NaN, "c": -Infinity, "d": inf, "e": "NaN", "f": 1.5E+000, '
        '"g": [-nan, Nan, INF, 2.4E-316]}'
    )
    assert parse_dss_json(text) == {
        "a": None, "b": None, "c": None, "d": None, "e": "NaN", "f": 1.5,
        "g": [None, None, None, 2.4e-316],
    }  # fmt: skip
