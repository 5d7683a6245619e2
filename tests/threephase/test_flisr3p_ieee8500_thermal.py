"""Unbalanced FLISR on ieee8500 with the conductors' ratings: the one line already over its
rating at the peak before any fault (the branch-phase that sets the widened loading limit)
must not be loaded further. Lowering the feeder regulator raises the current the
constant-power loads beyond it draw, so that tap step is refused; the fallback then tries
first the openings that take load off that line, and sections 12 and 4 (faults on
ln6505949-1 and ln5965099-10) get verified plans, replayed in OpenDSS."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent.flisr3p_run import build_flisr3p
from gridpilot.control.flisr3p.engine import _loading
from gridpilot.control.flisr3p.results import check_state
from gridpilot.model import load_grid
from gridpilot.model.threephase.builtin import feeder_session
from gridpilot.twin.unbalanced.replay import dss_apply_state, dss_state_metrics

pytestmark = pytest.mark.slow

TOL_PU = 1e-6
FAULTS = ("ln6505949-1", "ln5965099-10")  # the bench's unverified two before this change


@pytest.fixture(scope="module")
def setup():
    eng, scheme = build_flisr3p(load_grid("ieee8500"))  # type: ignore[arg-type]
    worst = int(np.argmax(_loading(eng.prefault)))  # the pre-existing overload
    return eng, scheme.recloser.branch, worst


def _section(eng, line: str) -> int:
    b = next(x for x in eng.grid.branches if x.name.lower() == line)
    return eng.sections.of_bus[b.t2.bus]


def test_a_tap_step_that_overloads_a_line_is_not_commanded(setup):
    """Section 12 isolated: the settled controls leave the regulator's output above the
    band; one feeder-regulator tap lower brings it in but loads the pre-fault overload past
    its limit, so the step is not commanded and the state stays unverified."""
    eng, rec, worst = setup
    st, _, _ = eng._start(_section(eng, FAULTS[0]), (rec,))
    out, chk = eng.verify(st)
    assert not chk.ok and chk.vmax_pu > eng.limits.v_max_pu
    assert chk.max_loading_pct <= eng.limits.loading_max_pct + 1e-9
    key = frozenset(k for k, on in st.items() if not on)
    assert eng._commands[key] == {}
    move = eng._tap_down(out, st, {})
    assert move is not None
    lower = eng.solver.solve_settled(st, eng.load_mult, {move[0]: move[1]})
    chk2 = check_state(lower, eng.limits, source_side=eng.source_side)
    assert chk2.max_loading_pct > eng.limits.loading_max_pct  # why it was refused
    assert int(np.argmax(_loading(lower))) == worst
    assert eng._blockers[key][0] == worst


@pytest.mark.parametrize("line", FAULTS)
def test_the_plan_sheds_instead_of_loading_the_overloaded_line(setup, line):
    """The plan opens one switch more, holds the band and every loading limit in the twin
    and in OpenDSS (same switches, taps and capacitor steps, controls off), leaves the
    pre-fault overload below its pre-fault loading, serves what it claims; no single
    opening serving more holds the limits."""
    eng, rec, worst = setup
    sec = _section(eng, line)
    p = eng.plan(sec, (rec,))
    assert p.after.ok and len(p.shed) == 1, p.notes
    out = eng.verify(p.state)[0] if not eng.evaluate(p.state)[1].ok else eng.evaluate(p.state)[0]
    assert _loading(out)[worst] < _loading(eng.prefault)[worst]
    taps, _, caps = eng.controls(p.state)
    sess = feeder_session("ieee8500")[0]
    dss_apply_state(sess, eng.grid, p.state, taps, "off", caps)
    skip = frozenset(
        f"{b}.{k}" for (b, k), m in zip(eng.solver.nodes, eng.source_side, strict=True) if m
    )
    m = dss_state_metrics(sess, skip)
    lim = eng.limits
    assert lim.v_min_pu - TOL_PU <= m.vmin_pu and m.vmax_pu <= lim.v_max_pu + TOL_PU
    assert m.max_loading_pct <= lim.loading_max_pct + 1e-3
    lost = eng.solver.unserved_kw(p.state)
    assert m.served_kw == pytest.approx(eng.prefault.served_kw - lost, abs=1e-6)
    assert {b for b, s in eng.sections.of_bus.items() if s == sec} <= m.dead_buses
    greedy, isolate, _ = eng._start(sec, (rec,))
    better = [k for k in eng.sections.ends if greedy[k] and k not in isolate  # switches
              and eng.solver.unserved_kw({**greedy, k: False}) < lost - 1e-9]  # fmt: skip
    assert better  # smaller sheds were there to try
    for k in better:
        assert not eng.verify({**greedy, k: False})[1].ok, k
