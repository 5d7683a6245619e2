"""The unbalanced grid as the phase-aware schedule sees it: base state, sensitivities, checks.

:class:`PhaseNetwork` adds one single-phase injection point per (bus, phase) the fleet can
draw on to a copy of the grid (a constant-power load of 0 kW, status ``fixed``) and keeps an
:class:`~gridpilot.twin.unbalanced.UnbalancedTwin` of it. Regulator taps and capacitors are
settled by OpenDSS's static control on the grid's own load at each step's load level
(multiples of ``LEVEL``) and held there while the fleet's powers are applied, as a feeder's
slow regulators stand during a fast schedule. From it:

* the base state: node voltages for the grid's loads times :data:`LOAD_SHAPE` at every step;
* sensitivities: complex dV/dP of every node-phase to 1 MW drawn at each point, at each load
  level, from one multi-column solve per level (one column per point, a 10 kW perturbation
  each), and from them those of each three-phase bus's negative- and positive-sequence
  voltage;
* checks: a full unbalanced power flow of all steps at once for a plan's point powers, with
  the voltage unbalance factor (VUF, %) of every three-phase bus, the node-phase voltages
  (pu) and the demand per phase.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.flex.phase_sens import SensRows
from gridpilot.model.threephase import Load, Terminal, ThreePhaseGrid
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.inverters import warn_inverters_ignored
from gridpilot.twin.unbalanced.results import three_phase_buses

log = logging.getLogger(__name__)

A = np.exp(2j * np.pi / 3)
PERTURB_MW = 0.01
LEVEL = 0.05


def _shape(h: np.ndarray) -> np.ndarray:
    s = (
        0.45
        + 0.2 * np.exp(-0.5 * ((h - 8.0) / 1.5) ** 2)
        + 0.55 * np.exp(-0.5 * ((h - 19.5) / 2.0) ** 2)
    )
    return s / s.max()


LOAD_SHAPE = _shape(np.arange(96) / 4.0)
"""Residential load multiplier over a day (96 quarter hours, peak 1.0 at about 19:30)."""

SOLAR_SHAPE = np.clip(np.sin(np.pi * (np.arange(96) / 4.0 - 6.0) / 13.0), 0.0, None) ** 1.5
"""Clear-sky PV output per kW peak over a day (96 quarter hours, sunrise 6:00, sunset 19:00)."""


def daily(shape: np.ndarray, steps: np.ndarray, step_h: float) -> np.ndarray:
    """``shape`` (96 quarter hours) at absolute ``steps`` of ``step_h`` hours (wrapping daily)."""
    q = np.floor(np.asarray(steps) * step_h * 4.0).astype(np.int64) % 96
    return shape[q]


def feeder_phases(grid: ThreePhaseGrid) -> dict[str, int]:
    """The primary phase behind each secondary bus of a single-phase service transformer.

    A split-phase secondary (``ieee8500``'s 120/240 V services) numbers its legs 1 and 2
    whatever primary phase feeds it; this maps every bus reached from such a transformer's
    secondary windings over lines (without crossing another transformer or entering a
    three-phase bus) to the primary node of its first winding; regulators (windings of
    about the same kV) are not service transformers. Buses not listed are on the primary:
    their node is the phase.
    """
    adj: dict[str, list[str]] = {}
    for b in grid.branches:
        if b.enabled:
            adj.setdefault(b.t1.bus, []).append(b.t2.bus)
            adj.setdefault(b.t2.bus, []).append(b.t1.bus)
    seen: dict[str, set[int]] = {}
    for bus_name, n in grid.nodes():
        seen.setdefault(bus_name, set()).add(n)
    three = {b for b, ns in seen.items() if {1, 2, 3} <= ns}
    out: dict[str, int] = {}
    for t in grid.transformers:
        prim = [n for n in t.windings[0].terminal.nodes if n > 0] if t.windings else []
        if not t.enabled or len(prim) != 1 or prim[0] not in (1, 2, 3):
            continue
        if all(abs(w.kv - t.windings[0].kv) <= 0.2 * t.windings[0].kv for w in t.windings[1:]):
            continue  # a regulator or autotransformer, not a service transformer
        todo = [w.terminal.bus for w in t.windings[1:]]
        while todo:
            bus = todo.pop()
            if bus in out or bus in three or bus == t.windings[0].terminal.bus:
                continue
            out[bus] = prim[0]
            todo.extend(adj.get(bus, []))
    return out


LEG_TO_LEG = 12
"""Injection point phase across nodes 1 and 2 of a split-phase service (240 V, the legs in
antiphase: twice the leg-to-neutral voltage); as ``phase_fleet.LEG_TO_LEG``."""


def der_grid(grid: ThreePhaseGrid, points: list[tuple[str, int]]) -> ThreePhaseGrid:
    """A copy of ``grid`` with one 0 kW constant-power load per injection point (bus, phase):
    phase to neutral, or across both legs of a split-phase service for :data:`LEG_TO_LEG`."""
    kv = {b.lower(): v for b, v in grid.bus_kv_ln.items()}
    extra = []
    for b, p in points:
        if b.lower() not in kv:
            raise ValidationError(
                f"injection point: bus {b!r} has no voltage base in {grid.name!r}"
            )
        legs = p == LEG_TO_LEG
        extra.append(
            Load(
                name=f"der_{b}_{p}",
                terminal=Terminal(b, (1, 2) if legs else (p, 0)),
                phases=1,
                conn="wye",
                kv=kv[b.lower()] * (2.0 if legs else 1.0),
                kw=0.0,
                kvar=0.0,
                vminpu=0.7,
                vmaxpu=1.3,
                kind="load",
                status="fixed",
            )
        )
    return dataclasses.replace(grid, loads=list(grid.loads) + extra)


MAX_SENS_GB = 1.0
SENS_MODES = ("auto", "dense", "rows")


def dense_gb(grid: ThreePhaseGrid, n_points: int, mult: np.ndarray) -> float:
    """GB the dense sensitivities (levels x node-phases x points, complex) would take."""
    levels = np.unique(np.round(mult / LEVEL))
    return float(levels.size * len(grid.nodes()) * n_points * 16 / 1e9)


def _sens_mode(grid: ThreePhaseGrid, n_points: int, mult: np.ndarray, mode: str) -> str:
    """``dense`` or ``rows``: ``auto`` picks dense within ``MAX_SENS_GB``; ``dense`` beyond it
    is refused by name before any memory is spent."""
    if mode not in SENS_MODES:
        raise ValidationError(
            f"phase network: field 'sens' = {mode!r}: must be one of {SENS_MODES}"
        )
    gb = dense_gb(grid, n_points, mult)
    if mode == "auto":
        return "dense" if gb <= MAX_SENS_GB else "rows"
    if mode == "dense" and gb > MAX_SENS_GB:
        raise ValidationError(
            f"phase plan on {grid.name!r}: {n_points} injection points x {len(grid.nodes())} "
            f"node-phases need {gb:.1f} GB of dense sensitivities (limit {MAX_SENS_GB} GB); "
            "use sens='rows' (constraint generation)"
        )
    return mode


@dataclass
class Check:
    """A full unbalanced power flow of every step: VUF (%) per three-phase bus x step, node-phase
    voltages (pu, nodes x steps) and demand per feeder phase (MW, 3 x steps, losses excluded;
    see :func:`feeder_phases`)."""

    vuf_pct: np.ndarray
    v_pu: np.ndarray
    phase_mw: np.ndarray
    v: np.ndarray


class PhaseNetwork:
    """Base state, sensitivities and checks of ``grid`` with the fleet's injection points."""

    def __init__(
        self,
        grid: ThreePhaseGrid,
        points: list[tuple[str, int]],
        steps: np.ndarray,
        step_h: float = 0.25,
        sens: str = "auto",
    ) -> None:
        self.points = list(points)
        self.steps = np.asarray(steps, np.int64)
        self.step_h = step_h
        self.mode = _sens_mode(grid, len(self.points), daily(LOAD_SHAPE, self.steps, step_h), sens)
        # a linear model around the base state: the feeder's own volt-var / volt-watt curves
        # are not in its sensitivities (said, not silent)
        warn_inverters_ignored(grid, "the flexibility network model")
        self.twin = UnbalancedTwin(der_grid(grid, self.points))
        n0 = len(grid.loads)
        of = self.twin.loads.load_of
        self.rows = np.array(
            [int(np.flatnonzero(of == n0 + k)[0]) for k in range(len(points))], np.int64
        )
        self.nodes = list(self.twin.net.nodes)
        self.vbase = np.asarray(self.twin.net.vbase_v, np.float64)
        self.tri_buses, self.tri_idx = three_phase_buses(self.nodes)
        mult = daily(LOAD_SHAPE, self.steps, step_h)
        self.mult = mult
        self.s_base = np.hstack([self.twin.base_powers(float(m)) for m in mult])
        self.level = np.round(np.round(mult / LEVEL) * LEVEL, 4)
        self.controls: dict[float, tuple[dict[str, float], dict[str, list[int]]]] = {}
        for lv in sorted(set(self.level.tolist())):
            self.twin.powerflow("static", load_mult=lv)
            self.controls[lv] = (self.twin.taps(), self.twin.cap_states())
        self._hold(1.0 if 1.0 in self.controls else max(self.controls))
        fp = feeder_phases(grid)
        self.node_phase = np.array([fp.get(b, k) for b, k in self.nodes], np.int64)
        self.branch_phase = self.node_phase[np.maximum(self.twin.loads.a, 0)]
        self.point_phase = np.array([fp.get(b, p) for b, p in self.points], np.int64)
        levels = list(self.controls)
        self.level_idx = np.array([levels.index(lv) for lv in self.level], np.int64)
        self.sens = self._sensitivities() if self.mode == "dense" else None
        self.sens_rows = SensRows(self.twin, self.rows, levels, self._hold)

    def _hold(self, level: float) -> None:
        taps, caps = self.controls[level]
        for name, tap in taps.items():
            self.twin.set_tap(name, tap)
        for name, states in caps.items():
            self.twin.set_cap(name, states)

    def solve(self, s: np.ndarray) -> np.ndarray:
        """Node voltages (V, nodes x columns) for load-branch powers ``s`` (VA), present controls."""
        v, _ = self.twin.solve(s)
        return v

    def solve_steps(self, s: np.ndarray) -> np.ndarray:
        """Node voltages (V, nodes x steps) for load-branch powers ``s`` (VA) of every step, each
        with the regulator taps and capacitor states of its load level."""
        v = np.zeros((len(self.nodes), s.shape[1]), complex)
        for lv in self.controls:
            cols = np.flatnonzero(self.level == lv)
            if cols.size:
                self._hold(lv)
                v[:, cols] = self.solve(s[:, cols])
        return v

    def _sensitivities(self) -> np.ndarray:
        """dV/dP (V per MW drawn, complex, levels x nodes x points) at each load level, with
        that level's taps and capacitors (one multi-column solve per level)."""
        k = len(self.points)
        out = np.zeros((len(self.controls), len(self.nodes), k), complex)
        for i, lv in enumerate(self.controls):
            self._hold(lv)
            s = np.repeat(self.twin.base_powers(lv), k + 1, axis=1)
            s[self.rows, np.arange(1, k + 1)] += PERTURB_MW * 1e6
            v = self.solve(s)
            out[i] = (v[:, 1:] - v[:, :1]) / PERTURB_MW
        return out

    def sens_at(self, li: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """dV/dP rows (V per MW, complex, len(nodes) x points) of ``nodes`` at the load-level
        indices ``li``: from the dense block, or computed on demand (:mod:`.phase_sens`)."""
        if self.sens is not None:
            return self.sens[np.asarray(li, np.int64), np.asarray(nodes, np.int64)]
        return self.sens_rows.get(li, nodes)

    def seq_at(self, li: np.ndarray, buses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sensitivities of the negative and positive sequence voltage (V/MW, rows x points) of
        the three-phase buses ``buses`` at the load-level indices ``li``."""
        li = np.asarray(li, np.int64)
        idx = self.tri_idx[np.asarray(buses, np.int64)]  # (rows, 3)
        s = [self.sens_at(li, idx[:, p]) for p in range(3)]
        v2 = (s[0] + A * A * s[1] + A * s[2]) / 3.0
        v1 = (s[0] + A * s[1] + A * A * s[2]) / 3.0
        return v2, v1

    @property
    def rows_computed(self) -> int:
        """Sensitivity rows (level, node-phase) in use: all of them when dense."""
        if self.sens is not None:
            return int(self.sens.shape[0] * self.sens.shape[1])
        return self.sens_rows.computed

    def check(self, p_mw: np.ndarray) -> Check:
        """Full power flow of every step with ``p_mw`` (points x steps, + drawn) at the points."""
        s = self.s_base.astype(complex)
        s[self.rows] += p_mw * 1e6
        v = self.solve_steps(s)
        vt = v[self.tri_idx]  # (buses, 3, steps)
        v1 = (vt[:, 0] + A * vt[:, 1] + A * A * vt[:, 2]) / 3.0
        v2 = (vt[:, 0] + A * A * vt[:, 1] + A * vt[:, 2]) / 3.0
        vuf = 100.0 * np.abs(v2) / np.maximum(np.abs(v1), 1e-9)
        phase_mw = np.stack([s.real[self.branch_phase == p].sum(axis=0) for p in (1, 2, 3)]) / 1e6
        return Check(vuf, np.abs(v) / self.vbase[:, None], phase_mw, v)
