"""QSTS with stateful controls against OpenDSS's time mode (same shapes, same steps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.reference import (
    add_shape,
    dss_qsts,
    dss_taps,
    dss_yearly_timed,
    extremes_gap,
    reset_taps,
)


def _shape(n: int, minutes: float, seed: int = 1) -> np.ndarray:
    t = np.arange(n) * minutes / 60.0
    rng = np.random.default_rng(seed)
    return 0.55 + 0.35 * np.sin(2 * np.pi * (t - 8) / 24) ** 2 + 0.06 * rng.standard_normal(n)


def _pair(master: Path, mult: np.ndarray, minutes: float) -> tuple[DssSession, UnbalancedTwin]:
    s = DssSession()
    s.compile(master)
    reset_taps(s)
    add_shape(s, "qsts", mult, minutes)
    return s, UnbalancedTwin(grid_from_session(s, master.stem))


@pytest.mark.parametrize("name", ["ieee13", pytest.param("ieee123", marks=pytest.mark.slow)])
def test_qsts_day_matches_opendss_taps_and_extremes(name: str) -> None:
    steps = 96
    s, tw = _pair(feeder_master(name), _shape(steps, 15), 15)
    res = tw.qsts(steps, 900.0)
    ref = dss_qsts(s, steps, 900.0)
    assert sum(ref.tap_ops.values()) > 10  # the day makes the regulators work
    assert res.tap_ops == ref.tap_ops
    assert extremes_gap(res.nodes, res.vmin_pu, res.vmax_pu, ref) < 1e-6
    assert res.steps == steps and len(res.losses_kw) == steps


def test_opendss_timed_as_one_solve_runs_the_same_steps_as_stepped() -> None:
    """The bench times OpenDSS as one ``Solve`` of all the steps (its fastest form): that
    run ends on the taps the stepped run (one ``Solve`` per step) ends on, after they
    moved, and takes time."""
    steps, master = 96, feeder_master("ieee13")
    s1, _ = _pair(master, _shape(steps, 15), 15)
    start = dss_taps(s1)
    ref = dss_qsts(s1, steps, 900.0, tol=1e-4)
    s2, _ = _pair(master, _shape(steps, 15), 15)
    one = dss_yearly_timed(s2, steps, 900.0, tol=1e-4)
    assert sum(ref.tap_ops.values()) > 10 and dss_taps(s1) != start
    assert one.final_taps == dss_taps(s1)
    assert one.solve_cpu_s > 0.0 and one.solve_s > 0.0


REG_FEEDER = """clear
new circuit.r basekv=12.47 pu=1.02 r1=0 x1=0.001 r0=0 x0=0.001
new linecode.lc nphases=3 r1=0.3 x1=0.6 r0=0.6 x0=1.8 c1=0 c0=0 units=km
new line.main bus1=sourcebus bus2=ra linecode=lc length=6 units=km
new transformer.reg phases=3 windings=2 buses=[ra rb] conns=[wye wye] kvs=[12.47 12.47]
~ kvas=[10000 10000] xhl=0.1 %loadloss=0.01 ppm=0
new regcontrol.reg transformer=reg winding=2 vreg=120 band=2 ptratio=60 delay=150 tapdelay=2
new line.tail bus1=rb bus2=b1 linecode=lc length=0.5 units=km
new load.ld bus1=b1 phases=3 kv=12.47 kw=3000 kvar=1000 model=1 vminpu=0.7
new capacitor.c1 bus1=b1 phases=3 kv=12.47 kvar=600 states=[0]
new capcontrol.cc capacitor=c1 element=line.main terminal=1 type=kvar ptratio=1
~ onsetting=700 offsetting=-500 delay=200 delayoff=200
set voltagebases=[12.47]
calcvoltagebases
"""


def test_tap_delay_holds_then_one_tap_per_action_and_cap_switches_after_delay(
    tmp_path: Path,
) -> None:
    """60-s steps: the load steps up at step 10 (t = 660 s). The regulator (delay 150 s)
    may first move at step 13 (t = 840 s ≥ 810 s), then one tap per step; the capacitor
    (kvar control, delay 200 s) closes at step 14 (t = 900 s ≥ 860 s) - and OpenDSS
    agrees step by step."""
    p = tmp_path / "reg.dss"
    p.write_text(REG_FEEDER)
    mult = np.where(np.arange(30) < 10, 0.3, 1.0)
    s, tw = _pair(p, mult, 1)
    res = tw.qsts(30, 60.0, keep_taps=True)
    ref = dss_qsts(s, 30, 60.0)
    taps = np.rint((res.tap_series["reg"] - 1.0) / 0.00625).astype(int)
    assert list(taps) == ref.tap_series["reg"]
    assert np.all(taps[:13] == 0)
    assert taps[13] == 1
    assert np.all(np.diff(taps) <= 1) and taps[-1] >= 3  # one tap per action, several
    cap = res.cap_series["c1"]
    assert cap[:14].max() == 0 and cap[14] == 1
    assert res.cap_ops == ref.cap_ops == {"c1": 1}
