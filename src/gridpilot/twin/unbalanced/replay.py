"""Replay a switch state in OpenDSS: the reference check of FLISR and reconfiguration plans.

:func:`dss_apply_state` puts the feeder's ties where :func:`normalise_ties` put them, sets
every switch open or closed as in the plan and the regulators' taps as given;
:func:`dss_state_metrics` reads back what the plan claims: the dead node-phases, the voltage
extremes over energised node-phases, the largest branch-phase loading and the served kW.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gridpilot.model.importers.opendss import DssSession
from gridpilot.model.threephase import ThreePhaseGrid

DEAD_PU = 0.05
LIVE_V = 1.0  # a load conductor above this many volts is energised


def dss_apply_state(
    sess: DssSession,
    grid: ThreePhaseGrid,
    closed: Mapping[str, bool],
    taps: Mapping[str, float] | None = None,
    control_mode: str = "off",
    caps: Mapping[str, list[int]] | None = None,
) -> None:
    """Make the compiled feeder in ``sess`` match ``grid``'s ties (``normalise_ties``), set
    the switches in ``closed``, the regulators' taps (regcontrol name → pu) and the
    capacitors' step states (``caps``: name → [0/1 per step]), then solve with
    ``control_mode`` (``off``: taps and steps stay as set; ``static``: OpenDSS's controls
    move)."""
    ties = set(grid.meta.get("ties", []))
    for b in grid.branches:
        name = b.name.lower()
        if b.kind != "switch" or not b.enabled:
            continue
        if name in ties:
            t2 = ".".join([b.t2.bus, *map(str, b.t2.nodes)])
            t1 = ".".join([b.t1.bus, *map(str, b.t1.nodes)])
            sess.command(f"edit line.{name} enabled=yes bus1={t1} bus2={t2}")
        on = closed.get(name, b.closed)
        sess.command(f"{'close' if on else 'open'} line.{name} term=1")
        sess.command(f"{'close' if on else 'open'} line.{name} term=2")
    for rc in grid.regcontrols:
        t = (taps or {}).get(rc.name.lower())
        if t is not None:
            sess.command(f"edit transformer.{rc.transformer} wdg={rc.tap_winding} tap={t:.6f}")
    for name, states in (caps or {}).items():
        sess.command(f"edit capacitor.{name} states=[{' '.join(str(int(x)) for x in states)}]")
    sess.command(f"set controlmode={control_mode}")
    sess.command("set tolerance=1e-10")
    sess.command("set maxiterations=1000")
    sess.command("solve")


@dataclass(frozen=True)
class DssMetrics:
    """What OpenDSS says about the present solution (pu, %, kW); ``dead_buses`` are buses
    all of whose node-phases are below 0.05 pu."""

    vmin_pu: float
    vmax_pu: float
    max_loading_pct: float
    served_kw: float
    dead_buses: frozenset[str]
    losses_kw: float


def dss_state_metrics(sess: DssSession, upper_skip: frozenset[str] = frozenset()) -> DssMetrics:
    """Voltage extremes over energised node-phases (the maximum without the ``upper_skip``
    node-phases, ``"bus.k"``: the source's own side, see FLISR's band), the largest loading
    of a rated line conductor (|I| / NormAmps at either end), the nominal kW of fully
    energised loads and the dead buses of OpenDSS's present solution."""
    c = sess.circuit
    v = np.asarray(c.AllBusVmagPu)
    names = [n.lower() for n in c.AllNodeNames]
    live = v > DEAD_PU
    judged = live & np.array([n not in upper_skip for n in names], bool)
    by_bus: dict[str, bool] = {}
    for n, on in zip(names, live, strict=True):
        b = n.split(".")[0]
        by_bus[b] = by_bus.get(b, False) or bool(on)
    dead = frozenset(b for b, on in by_bus.items() if not on)
    worst = 0.0
    lines = c.Lines
    for _ in lines:
        if lines.NormAmps <= 0:
            continue
        c.SetActiveElement(f"line.{lines.Name}")
        if not c.ActiveCktElement.Enabled:
            continue
        i = np.asarray(c.ActiveCktElement.CurrentsMagAng)[0::2]
        if i.size:
            worst = max(worst, 100.0 * float(i.max()) / lines.NormAmps)
    served = 0.0
    loads = c.Loads
    for _ in loads:
        c.SetActiveElement(f"load.{loads.Name}")
        vm = np.asarray(c.ActiveCktElement.VoltagesMagAng)[0::2]
        nph = c.ActiveCktElement.NumPhases
        ph = vm[: max(nph, 2) if loads.IsDelta and nph == 1 else nph]
        if ph.size and (ph > LIVE_V).all():
            served += loads.kW
    loss = complex(*c.Losses) / 1e3
    vmax = float(v[judged].max()) if judged.any() else float("nan")
    return DssMetrics(float(v[live].min()), vmax, worst, served, dead, loss.real)
