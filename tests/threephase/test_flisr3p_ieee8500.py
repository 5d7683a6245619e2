"""Unbalanced FLISR on ieee8500, section 24 (faults on ln6170293-1, ln5958866-1): restoring
everything the switches can reach leaves the feeder regulator's output above the band for
every feeder-regulator tap and phase-1 capacitor state; shedding one small section (77 kW)
lets the regulator go a tap lower, and that plan is verified and replayed in OpenDSS."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gridpilot.agent.flisr3p_run import build_flisr3p
from gridpilot.control.flisr3p.results import check_state
from gridpilot.errors import UnknownComponentError
from gridpilot.model import load_grid
from gridpilot.model.threephase.builtin import feeder_session
from gridpilot.twin.unbalanced.replay import dss_apply_state, dss_state_metrics

pytestmark = pytest.mark.slow

SECTION = 24
TOL_PU = 1e-6


@pytest.fixture(scope="module")
def setup():
    eng, scheme = build_flisr3p(load_grid("ieee8500"))  # type: ignore[arg-type]
    return eng, scheme.recloser.branch


def test_a_verified_partial_restoration_beats_an_unverified_full_one(setup):
    """The greedy plan (isolate, every island the ties can restore) fails the band's upper
    edge; the plan sheds one section more, commands the feeder regulator lower, holds the
    band in the twin and in OpenDSS (same switches, taps and capacitor steps, controls off)
    and serves what it claims."""
    eng, rec = setup
    p = eng.plan(SECTION, (rec,))
    assert p.after.ok and p.shed, p.notes
    lim = eng.limits
    full = dict(p.state)
    for s in p.shed:
        full[s] = True
    assert not eng.verify(full)[1].ok  # the state serving more fails with the tap commands
    lost_full, lost = eng.solver.unserved_kw(full), eng.solver.unserved_kw(p.state)
    assert 0 < lost - lost_full < 0.01 * eng.prefault.served_kw  # a small part left off
    taps, commands, caps = eng.controls(p.state)
    assert commands and all(taps[k] == v for k, v in commands.items())
    sess = feeder_session("ieee8500")[0]  # rated as our grid is (builtin.rate_lines)
    dss_apply_state(sess, eng.grid, p.state, taps, "off", caps)
    skip = frozenset(
        f"{b}.{k}" for (b, k), m in zip(eng.solver.nodes, eng.source_side, strict=True) if m
    )
    m = dss_state_metrics(sess, skip)
    assert lim.v_min_pu - TOL_PU <= m.vmin_pu and m.vmax_pu <= lim.v_max_pu + TOL_PU
    assert m.max_loading_pct <= lim.loading_max_pct + 1e-3
    assert m.served_kw == pytest.approx(eng.prefault.served_kw - lost, abs=1e-6)
    faulted = {b for b, s in eng.sections.of_bus.items() if s == SECTION}
    assert faulted <= m.dead_buses


def test_no_tap_and_capacitor_state_holds_the_band_with_everything_restored(setup):
    """Isolation alone (no tie restores load here: the one tie to the dark part is
    single-phase): for feeder_rega at its settled tap and up to two taps lower, feeder_regc
    settled or held a tap lower, and every on/off state of the phase-1 capacitors (held),
    the other controls settled, some node-phase leaves the band."""
    eng, rec = setup
    st, _, _ = eng._start(SECTION, (rec,))
    settled = eng.solver.solve_settled(st, eng.load_mult).result.taps
    step = 0.00625
    caps1 = [c.name.lower() for c in eng.grid.capacitors
             if c.t1.nodes[:1] == (1,) and len(c.t1.nodes) == 1]  # fmt: skip
    assert len(caps1) == 3
    tried = 0
    for da, dc in itertools.product((0, 1, 2), (0, 1)):
        taps = {"feeder_regb": settled["feeder_regb"] - step,
                "feeder_rega": settled["feeder_rega"] - da * step}  # fmt: skip
        if dc:
            taps["feeder_regc"] = settled["feeder_regc"] - dc * step
        for bits in itertools.product((1, 0), repeat=len(caps1)):
            held = {c: [b] for c, b in zip(caps1, bits, strict=True)}
            out = eng.solver.solve_settled(st, eng.load_mult, taps, held)
            assert all(out.result.cap_states[c] == held[c] for c in caps1)  # held
            assert not check_state(out, eng.limits, source_side=eng.source_side).ok, (taps, held)
            tried += 1
    assert tried == 48


def test_held_capacitors_are_named_and_stay_put(setup):
    """``solve_settled(..., caps=...)`` holds the capacitors it is given (their controls do
    not act) and names an unknown one."""
    eng, _ = setup
    st = dict(eng.solver.normal)
    free = eng.solver.solve_settled(st, eng.load_mult)
    name = next(k for k, s in free.result.cap_states.items() if any(s))
    held = eng.solver.solve_settled(st, eng.load_mult, caps={name: [0]})
    assert held.result.cap_states[name] == [0]
    assert not np.allclose(held.result.v_pu, free.result.v_pu)
    with pytest.raises(UnknownComponentError, match="nosuchcap"):
        eng.solver.solve_settled(st, eng.load_mult, caps={"nosuchcap": [1]})
