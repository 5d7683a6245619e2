"""What lies upstream of a feeder head, as FLISR's candidate sweep needs it.

FLISR checks candidates on a *region* (the dead island and the feeders that may take it); the
region's roots are feeder heads, buses of a source section such as the MV busbar of an HV/MV
transformer. Holding those at their pre-fault voltage misses the drop when a root picks up
restored load (oberrhein, fault on line 52: the island moves onto the other transformer,
whose MV bus falls from 1.0146 to 1.0075 pu). :class:`Upstream` gives, for a pre-fault switch
state, the linear model of the whole energised grid seen from any bus:

* ``z_th_pu(roots)``: the Thevenin impedance at each root (series impedances of lines,
  transformers with their ratios, bus switches, and the sources' short-circuit impedance;
  sources are ideal voltages behind it), pu on 1 MVA and the bus's nominal voltage;
* ``equivalent(roots, removed, solver)``: each root's voltage once the loads at the
  ``removed`` buses (the part de-energised by the trip) no longer draw, solved on the impedance
  matrix (so a root on the same transformer as the lost feeder rises, and moving the load back
  onto it gives back the pre-fault drop), its open-circuit voltage, and the power that, drawn
  at the root, explains its drop (for a root below one transformer: everything that transformer
  feeds).

The region's sweep then feeds each root through its Thevenin impedance from a virtual bus at
the open-circuit voltage, with what the root feeds outside the region as a constant-power load
on it (it turns with the root's voltage angle, as it does in a power flow), and the virtual
source trimmed so that the root sits at its present voltage before restoration
(:meth:`gridpilot.control.radialpf.RadialSolver.prepare` with ``z_root_pu``/``s_root_pu``).
Coupling between two roots (the mutual part of the impedance matrix) is not carried into the
sweep: each root sees only its own drop, which overstates it where load moves between two roots
on one transformer; the twin check of the final state covers the rest.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from gridpilot.control.radialpf import S_BASE_MVA, RadialSolver
from gridpilot.model import Grid

log = logging.getLogger(__name__)

TOL_PU = 1e-6  # fixed-point iterations stop when the roots' voltages move less than this (pu)
MAX_ITER = 20


class Upstream:
    """Linear model (sparse LU of the bus admittance matrix) of one energised switch state.

    ``conducting``: flag per solver branch (lines, transformers, bus switches);
    ``v_pre``: complex pre-fault bus voltages (pu, 0 where not energised).
    """

    def __init__(
        self, grid: Grid, solver: RadialSolver, conducting: np.ndarray, v_pre: np.ndarray
    ) -> None:
        nb = len(grid.bus)
        on = np.abs(v_pre) > 0.5
        self.v_pre = v_pre
        self._pos = np.full(nb, -1, np.int64)
        self._pos[on] = np.arange(int(on.sum()))
        n = int(on.sum())
        f, t = solver.branch_from, solver.branch_to
        use = conducting & on[f] & on[t] & (f != t)
        y = 1.0 / solver.z[use]
        a = solver.ratio[use]
        fi, ti = self._pos[f[use]], self._pos[t[use]]
        rows = np.concatenate([fi, ti, fi, ti])
        cols = np.concatenate([fi, ti, ti, fi])
        vals = np.concatenate([y / a**2, y, -y / a, -y / a])
        src = grid.source
        s_on = src["in_service"] & on[grid.bus.position_map(src["bus"])]
        sb = self._pos[grid.bus.position_map(src["bus"][s_on])]
        z_abs = S_BASE_MVA / src["sk_mva"][s_on]
        rx = src["rx_ratio"][s_on]
        x = z_abs / np.sqrt(1 + rx**2)
        y_src = 1.0 / (rx * x + 1j * x)
        rows = np.concatenate([rows, sb])
        cols = np.concatenate([cols, sb])
        vals = np.concatenate([vals, y_src])
        self._lu = None
        if n:
            ybus = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
            try:
                self._lu = splu(ybus)
            except RuntimeError as exc:  # singular: a part without a source
                log.warning("upstream model unavailable: %s", exc)
        # shunts of conducting branches (line charging, magnetising) per bus: they go with the
        # bus when it is de-energised (1 Mvar of cable charging lost moves an MV bus by 0.005 pu)
        self._y_sh = np.zeros(nb, complex)
        np.add.at(self._y_sh, f[use], solver.y_from[use])
        np.add.at(self._y_sh, t[use], solver.y_to[use])
        # current drawn at each bus (loads, injections, shunts) in the pre-fault state (pu)
        self._i_load = self._draw(solver, v_pre, on)
        self._z_cache: dict[int, complex] = {}
        self._v_open: np.ndarray | None = None
        self._v_now: dict[bytes, np.ndarray] = {}  # voltages per removed set (re-planning)

    def _draw(self, solver: RadialSolver, v: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Current drawn at each kept bus at voltages ``v`` (load convention, pu; 0 elsewhere)."""
        va = np.abs(v)
        s_bus = solver.s_p + solver.s_i * va + solver.s_z * va**2
        i = np.conj(s_bus / np.where(keep, v, 1.0)) + self._y_sh * v
        return np.where(keep, i, 0.0)

    @property
    def ok(self) -> bool:
        """Whether the model could be built (every energised part holds a source)."""
        return self._lu is not None

    def z_th_pu(self, buses: np.ndarray) -> np.ndarray:
        """Thevenin impedance at each bus position (complex pu; 0 where unknown)."""
        out = np.zeros(len(buses), complex)
        if self._lu is None:
            return out
        for j, b in enumerate(np.asarray(buses, np.int64).tolist()):
            z = self._z_cache.get(b)
            if z is None:
                p = int(self._pos[b])
                if p < 0:
                    z = 0j
                else:
                    e = np.zeros(self._lu.shape[0], complex)
                    e[p] = 1.0
                    z = complex(self._lu.solve(e)[p])
                self._z_cache[b] = z
            out[j] = z
        return out

    def _solve(self, rhs_bus: np.ndarray) -> np.ndarray:
        """Z @ rhs over bus positions (complex; 0 at buses outside the model)."""
        out = np.zeros(self.v_pre.size, complex)
        if self._lu is not None:
            on = self._pos >= 0
            out[on] = self._lu.solve(np.ascontiguousarray(rhs_bus[on]))
        return out

    def equivalent(
        self, roots: np.ndarray, removed: np.ndarray, solver: RadialSolver
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Thevenin equivalent of the grid at each root once the loads at ``removed`` (bool per
        bus) no longer draw: ``(v_now_pu, z_th_pu, v_open_pu, s_total_pu)``.

        ``v_now_pu``: the root's voltage magnitude in that state (constant-power, -current and
        -impedance loads solved by fixed-point iteration on the impedance matrix, so that the
        other loads turn with the voltage angle as they do in a power flow); ``v_open_pu``: the
        magnitude with no load at all; ``s_total_pu``: the complex power that, drawn at the
        root, gives its present drop (everything the root's path feeds, pu on 1 MVA). Without a
        model: the pre-fault magnitudes, zero impedance and power.
        """
        b = np.asarray(roots, np.int64)
        z = self.z_th_pu(b)
        if self._lu is None:
            v = np.abs(self.v_pre[b])
            return v, z, v, np.zeros(b.size, complex)
        on = self._pos >= 0
        keep = on & ~removed
        if self._v_open is None:
            self._v_open = self.v_pre + self._solve(self._i_load)
        key = np.packbits(removed).tobytes()
        v = self._v_now.get(key)
        if v is None:
            v = self.v_pre.copy()
            for _ in range(MAX_ITER):
                nv = self.v_pre + self._solve(self._i_load - self._draw(solver, v, keep))
                done = np.max(np.abs(nv[b] - v[b]), initial=0.0) < TOL_PU
                v = nv
                if done:
                    break
            if len(self._v_now) > 16:
                self._v_now.clear()
            self._v_now[key] = v
        vr, vo = v[b], self._v_open[b]
        ok = np.abs(z) > 1e-12
        i_tot = np.where(ok, (vo - vr) / np.where(ok, z, 1.0), 0.0)
        return np.abs(vr), z, np.abs(vo), vr * np.conj(i_tot)
