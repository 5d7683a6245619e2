"""CapControl types pf and time, and the voltage override, in both QSTS engines against
OpenDSS on ieee13 with a control added by DSS command: same operations per bank, same
voltage extremes."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.model.threephase.elements import PT_AVG, PT_MAX
from gridpilot.twin.unbalanced.controls import time_of_day
from gridpilot.twin.unbalanced.reference import (
    dss_cap_states,
    dss_qsts,
    extremes_gap,
    tighten,
)

from .conftest import ieee13_pair

STEPS = 96

SCENARIOS = {
    # a pf control that opens the leading bank and closes it step by step on lagging kvar
    "pf": [
        "edit capacitor.cap1 numsteps=3 kvar=[200 200 200] states=[1 1 1]",
        "new capcontrol.pf capacitor=cap1 element=line.692675 terminal=1 type=pf"
        " onsetting=0.97 offsetting=-0.97 delay=60 delayoff=60 deadtime=300 pctminkvar=40",
    ],
    # a daytime bank and an overnight one (OFF time the next day)
    "time": [
        "new capcontrol.day capacitor=cap2 element=line.684611 terminal=1 type=time"
        " onsetting=8 offsetting=20 delay=30 delayoff=30",
        "new capacitor.cap3 bus1=680 phases=3 kvar=300 kv=4.16 states=[0]",
        "new capcontrol.night capacitor=cap3 element=line.671680 terminal=1 type=time"
        " onsetting=21.5 offsetting=6.25 delay=30 delayoff=30",
        "makebuslist",
    ],
    # the lowest phase voltage, a delta bank's line-to-line PT voltage, a mean current
    "phases": [
        "new capcontrol.va capacitor=cap1 element=line.692675 terminal=1 type=voltage"
        " ptratio=20 ptphase=min onsetting=118 offsetting=121 delay=60 delayoff=60 deadtime=0",
        "new capacitor.cap4 bus1=680 phases=3 kvar=300 kv=4.16 conn=delta states=[0]",
        "new capcontrol.dl capacitor=cap4 element=line.671680 terminal=1 type=voltage"
        " ptratio=34.64 ptphase=2 onsetting=118 offsetting=121 delay=60 delayoff=60 deadtime=0",
        "new capcontrol.ia capacitor=cap2 element=line.684611 terminal=1 type=current ctratio=1"
        " ctphase=avg onsetting=70 offsetting=55 delay=60 delayoff=60 deadtime=0",
        "makebuslist",
    ],
    # a current control whose voltage override opens the bank on high voltage
    "override": [
        "new capcontrol.cur capacitor=cap1 element=line.692675 terminal=1 type=current"
        " ctratio=1 onsetting=1000 offsetting=10 voltoverride=yes ptratio=20 vmax=120.5"
        " vmin=117.5 delay=60 delayoff=60 deadtime=0",
    ],
}


def _shape(n: int, minutes: float, seed: int = 5) -> np.ndarray:
    t = np.arange(n) * minutes / 60.0
    rng = np.random.default_rng(seed)
    return 0.45 + 0.5 * np.sin(2 * np.pi * (t - 8) / 24) ** 2 + 0.05 * rng.standard_normal(n)


@pytest.mark.parametrize("mode", sorted(SCENARIOS))
def test_capcontrol_mode_matches_opendss_in_both_engines(mode: str) -> None:
    mult = _shape(STEPS, 15)
    s, tw = ieee13_pair(SCENARIOS[mode], mult)
    assert not any("capcontrol" in w for w in tw.grid.warnings)  # the mode is modelled
    fast = tw.qsts(STEPS, 900.0, engine="compiled", keep_taps=True)
    _, tw2 = ieee13_pair(SCENARIOS[mode], mult)
    slow = tw2.qsts(STEPS, 900.0, engine="python", keep_taps=True)
    ref = dss_qsts(s, STEPS, 900.0)
    assert sum(ref.cap_ops.values()) >= 2  # the control has to act
    assert fast.cap_ops == slow.cap_ops
    assert {k: v for k, v in ref.cap_ops.items() if k in fast.cap_ops} == fast.cap_ops
    assert fast.tap_ops == slow.tap_ops == ref.tap_ops
    for name, series in fast.cap_series.items():
        assert np.array_equal(series, slow.cap_series[name])
    assert np.abs(fast.vmin_pu - slow.vmin_pu).max() < 1e-6
    assert extremes_gap(fast.nodes, fast.vmin_pu, fast.vmax_pu, ref) < 1e-6
    assert extremes_gap(slow.nodes, slow.vmin_pu, slow.vmax_pu, ref) < 1e-6


def test_time_of_day_folds_like_opendss() -> None:
    assert time_of_day(900.0) == 0.25
    assert time_of_day(24 * 3600.0) == 24.0  # 24:00 itself stays
    assert time_of_day(24 * 3600.0 + 900.0) == 0.25
    assert time_of_day(49 * 3600.0) == 1.0


def test_unmodelled_capcontrol_options_stay_in_the_warning() -> None:
    s = DssSession()
    s.compile(feeder_master("ieee13"))
    s.command(
        "new capcontrol.pf capacitor=cap1 element=line.692675 type=pf onsetting=0.95"
        " offsetting=-0.95 vbus=671 ptphase=max ctphase=avg"
    )
    s.command("new capcontrol.fw capacitor=cap2 element=line.684611 type=follow")
    grid = grid_from_session(s, "ieee13")
    ctl = next(c for c in grid.capcontrols if c.name == "pf")
    assert ctl.type == "pf" and ctl.on_setting == 0.95 and ctl.off_setting == pytest.approx(1.05)
    text = " ".join(grid.warnings)
    assert "capcontrol.fw: control type 'follow' is not modelled" in text
    assert "voltage-override" not in text and ctl.vbus == "671.1.2.3"  # modelled now
    assert (ctl.pt_phase, ctl.ct_phase) == (PT_MAX, PT_AVG)


@pytest.mark.parametrize("mode", sorted(SCENARIOS))
def test_static_snapshot_states_match_opendss(mode: str) -> None:
    """Snapshot (static control mode, time of day 0:00): the same bank states as OpenDSS."""
    s, tw = ieee13_pair(SCENARIOS[mode], np.ones(4))
    tw.powerflow()
    tighten(s)
    s.command("solve")
    assert tw.cap_states() == dss_cap_states(s)
    if mode == "time":
        assert tw.cap_states()["cap2"] == [0]  # the daytime bank opens at midnight
