from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import Action, GuardLimits, Plan, SafetyGuard
from gridpilot.errors import ValidationError
from gridpilot.model import load_grid


@pytest.fixture(scope="module")
def guard_setup():
    g = load_grid("case33bw")
    inj = {"load_p_mw": g.load["p_mw"] * 0.6, "load_q_mvar": g.load["q_mvar"] * 0.6}
    return g, inj


def _closed(g, **changes: bool) -> np.ndarray:
    c = g.switch["closed"].copy()
    for sid, val in changes.items():
        c[g.switch.index_of(int(sid[1:]))] = val
    return c


def test_accepts_a_tie_swap_and_reports_simulation(guard_setup) -> None:
    g, inj = guard_setup
    guard = SafetyGuard(g)
    plan = Plan([Action("switch", 7, 0), Action("switch", 33, 1)], "swap", "test")
    v = guard.check(plan, switch_closed=g.switch["closed"], injections=inj)
    assert v.ok, v.reasons
    assert v.after["converged"] and v.after["energised_buses"] == 33
    assert v.after["vmin_pu"] != v.before["vmin_pu"]


def test_refuses_a_loop(guard_setup) -> None:
    g, inj = guard_setup
    v = SafetyGuard(g).check(
        Plan([Action("switch", 33, 1)], "loop", "test"),
        switch_closed=g.switch["closed"],
        injections=inj,
    )
    assert not v.ok and any("radial" in r for r in v.reasons)


def test_a_meshed_network_keeps_its_meshes_and_may_not_gain_one(guard_setup) -> None:
    """A network meshed by design (here case33bw with tie 33 closed, as a low-voltage mesh
    runs) is not a reason to refuse every plan: the guard refuses only plans that add a loop;
    one that opens the loop again is accepted."""
    g, inj = guard_setup
    meshed = _closed(g, s33=True)
    guard = SafetyGuard(g)
    same = guard.check(
        Plan([Action("switch", 34, 0)], "same", "test"), switch_closed=meshed, injections=inj
    )
    assert "radial" not in " ".join(same.reasons) and "loop" not in " ".join(same.reasons)
    more = guard.check(
        Plan([Action("switch", 35, 1)], "more", "test"), switch_closed=meshed, injections=inj
    )
    assert not more.ok and any("add a loop" in r and "1 -> 2" in r for r in more.reasons)
    back = guard.check(
        Plan([Action("switch", 7, 0)], "back", "test"), switch_closed=meshed, injections=inj
    )
    assert back.ok, back.reasons


def test_refuses_unplanned_interruption(guard_setup) -> None:
    g, inj = guard_setup
    v = SafetyGuard(g).check(
        Plan([Action("switch", 12, 0)], "cut", "test"),
        switch_closed=g.switch["closed"],
        injections=inj,
    )
    assert not v.ok and any("interrupt" in r for r in v.reasons)


def test_never_energises_a_faulted_line_even_in_an_intermediate_step(guard_setup) -> None:
    g, inj = guard_setup
    guard = SafetyGuard(g)
    # feeder breaker tripped, fault on line 7: reclosing before isolating would energise it
    closed = _closed(g, s1=False)
    bad = Plan(
        [Action("switch", 1, 1), Action("switch", 7, 0), Action("switch", 8, 0)],
        "wrong order",
        "test",
        data={"section_buses": [8]},
    )
    v = guard.check(bad, switch_closed=closed, injections=inj, faulted_lines={7})
    assert not v.ok and any("faulted line 7" in r for r in v.reasons)
    good = Plan(
        [Action("switch", 7, 0), Action("switch", 8, 0), Action("switch", 1, 1)],
        "isolate first",
        "test",
        data={"section_buses": [8]},
    )
    assert guard.check(good, switch_closed=closed, injections=inj, faulted_lines={7}).ok


def test_rate_limits_per_switch(guard_setup) -> None:
    g, inj = guard_setup
    guard = SafetyGuard(
        g, limits=GuardLimits(max_ops_per_switch_per_hour=2, max_plans_per_minute=100)
    )
    closed = g.switch["closed"].copy()
    swap = Plan([Action("switch", 7, 0), Action("switch", 33, 1)], "swap", "test")
    back = Plan([Action("switch", 33, 0), Action("switch", 7, 1)], "back", "test")
    assert guard.check(swap, switch_closed=closed, injections=inj, now_s=0).ok
    guard.commit(swap, 0)
    c2 = _closed(g, s7=False, s33=True)
    assert guard.check(back, switch_closed=c2, injections=inj, now_s=60).ok
    guard.commit(back, 60)
    v = guard.check(swap, switch_closed=closed, injections=inj, now_s=120)
    assert not v.ok and any("more than 2 times" in r for r in v.reasons)
    assert guard.check(
        swap, switch_closed=closed, injections=inj, now_s=3700
    ).ok  # the hour has passed


def test_unknown_switch_and_bad_values() -> None:
    g = load_grid("case33bw")
    v = SafetyGuard(g).check(
        Plan([Action("switch", 999, 1)], "x", "test"),
        switch_closed=g.switch["closed"],
        injections={},
    )
    assert not v.ok and "switch 999 does not exist" in v.reasons[0]
    with pytest.raises(ValidationError, match="within"):
        Action("dr", None, 1.5)
    with pytest.raises(ValidationError, match="unknown"):
        Action("explode", 1, 1)


def test_loading_limit_covers_transformers() -> None:
    """The guard's loading limit means lines *and* transformers (S/Sn): on oberrhein, closing
    tie 48 and opening 318 moves a feeder onto one HV/MV transformer (about 118 % S/Sn) while
    no line passes 115 %."""
    g = load_grid("oberrhein")
    inj = {"load_p_mw": g.load["p_mw"].copy(), "load_q_mvar": g.load["q_mvar"].copy()}
    guard = SafetyGuard(g, limits=GuardLimits(loading_max_pct=115.0, v_min_pu=0.8))
    plan = Plan([Action("switch", 318, 0), Action("switch", 48, 1)], "swap", "test")
    v = guard.check(plan, switch_closed=g.switch["closed"], injections=inj)
    assert not v.ok and any("transformer" in r and "115" in r for r in v.reasons), v.reasons
    assert v.after["max_loading_branch"].startswith("transformer")
