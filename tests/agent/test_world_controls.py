"""The three-phase world's local controls are the twin's time-mode rules (OpenDSS's
``controlmode=time``): the world's physics stepped over a day at 15-minute steps, the loop not
acting, moves the same taps and switches the same banks, device by device and step by step,
as :meth:`UnbalancedTwin.qsts` with the same per-step load multipliers, and on ieee13 (inverse
time regulators with a VLimit, a current CapControl with dead time, set by Edit) as OpenDSS."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent.phasephysics import PhasePhysics
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.balanced import balanced_view
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.qsts import QstsOptions, load_multipliers
from gridpilot.twin.unbalanced.reference import add_shape, dss_qsts, reset_taps

STEPS = 96
_REGS13 = [
    *(f"edit regcontrol.reg{k} delay=1800 inversetime=yes vlimit=126" for k in (1, 2, 3)),
    "new capcontrol.cur capacitor=cap1 element=line.692675 terminal=1 type=current ctratio=1"
    " onsetting=300 offsetting=150 voltoverride=yes vmax=126 vmin=115 ptratio=20 delay=300"
    " delayoff=300 deadtime=3600",
    "makebuslist",
]
_CAP123 = [
    "edit capacitor.c83 states=[0]",
    "new capcontrol.c83 capacitor=c83 element=line.l84 terminal=1 type=voltage ptratio=20"
    " onsetting=119.5 offsetting=122.5 delay=300 delayoff=300 deadtime=3600",
]
SCENARIOS = {"ieee13": _REGS13, "ieee123": _CAP123}


def _shape(n: int, seed: int = 7) -> np.ndarray:
    t = np.arange(n) * 0.25
    rng = np.random.default_rng(seed)
    return 0.5 + 0.45 * np.sin(2 * np.pi * (t - 8) / 24) ** 2 + 0.06 * rng.standard_normal(n)


def _session(feeder: str) -> tuple[DssSession, ThreePhaseGrid]:
    s = DssSession()
    s.compile(feeder_master(feeder))
    for cmd in SCENARIOS[feeder]:
        s.command(cmd)
    reset_taps(s)
    add_shape(s, "q", _shape(STEPS), 15)
    return s, grid_from_session(s, feeder)


def _world_day(
    grid: ThreePhaseGrid,
) -> tuple[dict[str, list[float]], dict[str, list[int]], PhasePhysics]:
    """The world's physics over the day: per step the multiplier of each feeder load that the
    QSTS uses, no switching, no commands; the taps and closed steps after each step."""
    tw = UnbalancedTwin(grid)
    per_branch = load_multipliers(tw, QstsOptions(steps=STEPS, resolution_s=900.0))
    mult = np.ones((len(grid.loads), STEPS))
    mult[tw.loads.load_of] = per_branch
    ph = PhasePhysics(grid, balanced_view(grid))
    taps: dict[str, list[float]] = {k: [] for k in ph.taps}
    caps: dict[str, list[int]] = {k: [] for k in ph.caps}
    for k in range(STEPS):
        st = ph.solve(frozenset(), mult[:, k], mult[:, k], 900.0)
        assert st.converged, k
        for name, tap in ph.taps.items():
            taps[name].append(tap)
        for name, states in ph.caps.items():
            caps[name].append(sum(states))
    return taps, caps, ph


def _moves(series: list[float] | np.ndarray, first: float, step: float) -> int:
    x = np.rint((np.concatenate([[first], np.asarray(series, float)]) - 1.0) / step)
    return int(np.abs(np.diff(x)).sum())


@pytest.mark.parametrize("feeder", sorted(SCENARIOS))
def test_world_controls_move_as_the_twins_qsts(feeder: str) -> None:
    sess, grid = _session(feeder)
    first = UnbalancedTwin(grid).taps()
    first_caps = {k: sum(v) for k, v in UnbalancedTwin(grid).cap_states().items()}
    taps, caps, ph = _world_day(grid)
    q = UnbalancedTwin(grid).qsts(STEPS, 900.0, keep_taps=True)
    assert sum(q.tap_ops.values()) > 5 and sum(q.cap_ops.values()) >= 1  # the controls work
    for name, series in q.tap_series.items():
        assert np.allclose(taps[name], series, atol=1e-9), name
    for name, series in q.cap_series.items():
        assert np.array_equal(caps[name], series), name
    # operations per device, from the step-by-step positions (one move per step at most in
    # OpenDSS's time mode at 15 minutes) and the world's own counts
    step = 0.00625  # both feeders' regulators: 0.625 % a tap
    assert {k: _moves(v, first[k], step) for k, v in taps.items()} == q.tap_ops
    assert {k: _moves(v, first_caps[k], 1.0) for k, v in caps.items() if k in q.cap_ops} == (
        q.cap_ops
    )
    assert ph.tap_ops == sum(q.tap_ops.values()) and ph.cap_ops == sum(q.cap_ops.values())
    if feeder == "ieee13":  # and as OpenDSS, tap by tap
        ref = dss_qsts(sess, STEPS, 900.0)
        assert ref.tap_ops == q.tap_ops
        assert {k: v for k, v in ref.cap_ops.items() if k in q.cap_ops} == q.cap_ops
        for name, series in ref.tap_series.items():
            assert np.array_equal(np.rint((np.asarray(taps[name]) - 1.0) / step), series), name
