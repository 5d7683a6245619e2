"""Switching, faults and protection on the unbalanced feeders (checked against OpenDSS)."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.field.protection3p import ProtectionScheme, simulate_protection
from gridpilot.model import load_grid
from gridpilot.model.importers.opendss import DssSession
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.faults import Fault, fault_branch, fault_study
from gridpilot.twin.unbalanced.reference import dss_voltages, tighten
from gridpilot.twin.unbalanced.topology import (
    SwitchingSolver,
    normalise_ties,
    solve_switched,
)


@pytest.fixture(scope="module")
def g123():
    return normalise_ties(load_grid("ieee123"))


@pytest.fixture(scope="module")
def solver123(g123):
    return SwitchingSolver(g123)


def test_ties_of_ieee123_are_open_switches_between_real_buses(g123):
    assert g123.meta["ties"] == ["sw7", "sw8"]
    sw = {b.name: b for b in g123.branches if b.kind == "switch"}
    assert (sw["sw7"].t2.bus, sw["sw7"].closed) == ("300", False)
    assert (sw["sw8"].t2.bus, sw["sw8"].t2.nodes, sw["sw8"].closed) == ("94", (1,), False)
    assert "300_open" not in {b for b, _ in g123.nodes()}


def test_normal_state_matches_the_twin(g123, solver123):
    ref = UnbalancedTwin(load_grid("ieee123")).powerflow("off")
    out = solver123.solve()
    pos = {nd: i for i, nd in enumerate(out.result.nodes)}
    both = [i for i, nd in enumerate(ref.nodes) if nd in pos]
    ours = np.abs(out.result.v[[pos[ref.nodes[i]] for i in both]])
    assert np.max(np.abs(ours - np.abs(ref.v[both])) / ref.vbase_v[both]) < 1e-7
    assert out.dead == [] and out.unserved_kw == 0.0


def test_opening_a_switch_leaves_the_part_beyond_it_dead(g123, solver123):
    fast = solver123.solve({"sw3": False})
    slow = solve_switched(g123, {"sw3": False}, control_mode="off")
    assert fast.dead and set(fast.dead) == set(slow.dead)
    assert fast.unserved_kw == pytest.approx(slow.unserved_kw) and fast.unserved_kw > 0
    assert fast.served_kw + fast.unserved_kw == pytest.approx(3490.0)
    dead = ~fast.energised
    assert np.all(fast.result.v[dead] == 0)
    assert fast.result.v_pu[fast.energised].min() > 0.9
    i = np.abs(fast.result.branch_i_a)[[m[0] == "sw3" for m in fast.result.branch_meta]]
    assert np.all(i == 0)


def test_dead_part_matches_opendss(g123):
    out = solve_switched(g123, {"sw3": False}, control_mode="off")
    s = DssSession()
    s.compile(feeder_master("ieee123"))
    tighten(s, "off")
    s.command("open line.sw3 term=1")
    s.command("solve")
    ref = dss_voltages(s)
    for (b, k), v, vb in zip(out.result.nodes, out.result.v, out.result.vbase_v, strict=True):
        if f"{b}.{k}" in ref:
            assert abs(abs(v) - abs(ref[f"{b}.{k}"])) / vb < 1e-6, (b, k)


def test_unknown_switch_is_named(solver123, g123):
    with pytest.raises(UnknownComponentError, match="sw99"):
        solver123.solve({"sw99": False})
    with pytest.raises(UnknownComponentError, match="nope"):
        solve_switched(g123, {"nope": True})


def test_fault_spec_and_phase_checked(g123):
    assert Fault.parse("l35", "slg:b").phase == 2
    assert Fault.parse("l35", "3PH").kind == "3ph"
    with pytest.raises(ValidationError, match="slg:x"):
        Fault.parse("l35", "slg:x")
    with pytest.raises(ValidationError, match=r"line l1: phase 1 .*phase\(s\) b"):
        fault_branch(g123, Fault("l1", "slg", 1))
    with pytest.raises(UnknownComponentError, match="nosuch"):
        fault_branch(g123, Fault("nosuch", "3ph"))
    with pytest.raises(ValidationError, match="r_ohm"):
        fault_branch(g123, Fault("l35", "3ph", None, -1.0))


@pytest.mark.parametrize(
    ("line", "spec"), [("l35", "slg:a"), ("l8", "slg:b"), ("l60", "3ph"), ("l35", "3ph")]
)
def test_fault_currents_match_opendss(solver123, g123, line, spec):
    fl = Fault.parse(line, spec)
    ours = np.abs(fault_study(solver123, fl).i_fault_a)
    br = fault_branch(g123, fl)
    ph = [fl.phase] if fl.kind == "slg" else [k for k in br.t2.nodes if k > 0]
    s = DssSession()
    s.compile(feeder_master("ieee123"))
    tighten(s, "off")
    nodes = ".".join(map(str, ph))
    s.command(f"new fault.f bus1={br.t2.bus}.{nodes} bus2={br.t2.bus}.{'.'.join('0' * len(ph))} "
              f"phases={len(ph)} r=0.0001")  # fmt: skip
    s.command("solve")
    c = s.circuit
    c.SetActiveElement("fault.f")
    ref = np.asarray(c.ActiveCktElement.CurrentsMagAng)[0::2][: len(ph)]
    assert np.allclose(ours, ref, rtol=0.01), (ours, ref)


@pytest.fixture(scope="module")
def scheme123(g123, solver123):
    return ProtectionScheme.for_grid(g123, solver123.solve())


def test_protection_is_placed_on_the_head_and_the_laterals(scheme123, g123):
    assert scheme123.recloser is not None and scheme123.recloser.branch == "sw1"
    fused = {f.branch for f in scheme123.fuses}
    assert {"l35", "l8"} <= fused  # single-phase laterals off three-phase buses
    lines = {b.name: b for b in g123.branches}
    assert all(lines[f].phases < 3 for f in fused)


def _outcome(solver, scheme, line, spec, permanent=True):
    fl = Fault.parse(line, spec)
    fl = Fault(fl.element, fl.kind, fl.phase, 0.0, permanent)
    return simulate_protection(scheme, fault_study(solver, fl))


def test_fuse_saving_and_lockout(solver123, scheme123, g123):
    sv = SwitchingSolver(g123, switchable=scheme123.branches())
    temp = _outcome(sv, scheme123, "l35", "slg:a", permanent=False)
    assert temp.opened == [] and temp.events[0][2] == "trip (fast)"  # the fuse was saved
    perm = _outcome(sv, scheme123, "l35", "slg:a")
    assert perm.opened == ["l35"] and "fast" in perm.events[0][2]
    assert perm.events[-1][1] == "fuse_l35" and perm.events[-1][2] == "blown"
    trunk = _outcome(sv, scheme123, "l60", "3ph")
    assert trunk.opened == ["sw1"] and trunk.events[-1][2] == "lockout"
    assert trunk.fpi["sw1"] and trunk.fpi["sw2"] and not trunk.fpi["sw3"]


def test_ties_of_ieee8500_are_its_disabled_switches():
    g0 = load_grid("ieee8500")
    g = normalise_ties(g0)
    disabled = sorted(b.name.lower() for b in g0.branches if b.kind == "switch" and not b.enabled)
    assert sorted(g.meta["ties"]) == disabled and len(disabled) == 5
    sw = {b.name.lower(): b for b in g.branches}
    assert all(sw[t].enabled and not sw[t].closed for t in disabled)
