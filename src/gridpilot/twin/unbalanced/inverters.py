"""Smart inverters (IEEE 1547-2018 volt-var / volt-watt) as OpenDSS's InvControl solves them.

Control iterations around the power flow, for all time steps (columns) at once:

1. solve the network with the inverters' present P and Q;
2. each inverter reads its terminal voltage (mean over its phases, pu of its rated voltage)
   and looks up the curve: the reactive power it wants (volt-var, pu of ``kvar_max``) and
   its active-power ceiling (volt-watt, pu of ``pmpp_kw``); within ``kva`` reactive power
   has priority and the active power is curtailed to fit;
3. it moves ``delta_q`` (``delta_p``) of the way there (OpenDSS's ``deltaQ_factor``); an
   inverter whose step changes sign without shrinking by half has its factor halved (the
   damping OpenDSS's automatic factor provides);
4. re-solve, until every change is below ``var_tol`` and the voltages move less than
   ``v_tol`` (``VarChangeTolerance``/``VoltageChangeTolerance``).

:class:`InverterTwin` is an :class:`UnbalancedTwin` whose every solve runs these iterations,
so snapshots, QSTS (regulators and capacitors in time mode) and batches see the inverters.
The reactive power is given whatever the active output (OpenDSS's default
``VarFollowInverter=No``): an inverter supports voltage at night too.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ConvergenceError, ValidationError
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.inverters import InverterControl
from gridpilot.twin.unbalanced.loads import branch_voltage, load_currents
from gridpilot.twin.unbalanced.results import UnbalancedResult
from gridpilot.twin.unbalanced.solver import SolveOptions
from gridpilot.twin.unbalanced.twin import UnbalancedTwin

log = logging.getLogger(__name__)

_KINDS = ("pv", "storage")


@dataclass
class InverterState:
    """The inverters' settled operating point (inverters × steps): kW, kvar injected, V."""

    names: list[str]
    p_kw: np.ndarray
    q_kvar: np.ndarray
    v_pu: np.ndarray
    iterations: int


@dataclass
class _Compiled:
    """Flat arrays over the controlled inverters (one entry per DER)."""

    names: list[str]
    rows: list[np.ndarray]  # load branches of each DER
    ctl: np.ndarray  # which control governs each DER
    kva: np.ndarray
    qmax: np.ndarray
    pmpp: np.ndarray
    vbase: np.ndarray


def _compile(twin: UnbalancedTwin, controls: list[InverterControl]) -> _Compiled:
    g = twin.grid
    by_name = {(ld.name.lower()): i for i, ld in enumerate(g.loads) if ld.kind in _KINDS}
    names, rows, ctl, kva, qmax, pmpp, vb = [], [], [], [], [], [], []
    seen: set[str] = set()
    for ci, c in enumerate(controls):
        c.validate()
        for r in c.inverters:
            key = r.der.lower().split(".")[-1]
            li = by_name.get(key)
            if li is None:
                raise ValidationError(
                    f"invcontrol.{c.name}: {r.der!r} is not a pv or storage element of {g.name}"
                )
            if key in seen:
                raise ValidationError(f"invcontrol.{c.name}: {r.der!r} is controlled twice")
            seen.add(key)
            br = np.flatnonzero(twin.loads.load_of == li)
            if br.size == 0:  # disabled element
                continue
            ld = g.loads[li]
            names.append(f"{ld.kind}.{ld.name}")
            rows.append(br)
            ctl.append(ci)
            kva.append(r.kva)
            qmax.append(r.kvar_max or r.kva)
            pmpp.append(r.pmpp_kw or abs(ld.kw))
            vb.append(float(twin.loads.vbase_v[br[0]]))
    return _Compiled(names, rows, np.array(ctl, np.int64), np.array(kva), np.array(qmax),
                     np.array(pmpp), np.array(vb))  # fmt: skip


class InverterTwin(UnbalancedTwin):
    """An :class:`UnbalancedTwin` with smart-inverter control iterations in every solve.

    ``controls``: the :class:`InverterControl` list (default: the grid's ``invcontrols``).
    After each solve ``last`` holds the inverters' :class:`InverterState`."""

    def __init__(
        self,
        grid: ThreePhaseGrid,
        opts: SolveOptions | None = None,
        controls: list[InverterControl] | None = None,
    ) -> None:
        super().__init__(grid, opts)
        ctls = [c for c in (grid.invcontrols if controls is None else controls) if c.enabled]
        self.controls = ctls
        self.inv = _compile(self, ctls)
        self.last: InverterState | None = None
        self.control_iterations = 0

    def solve(self, s_steps: np.ndarray, v0: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Node voltages (V) for load-branch powers ``s_steps`` (VA) with the inverters
        settled on their curves (the inverters' rows of ``s_steps`` give their available
        power); the power-flow iterations summed over the control iterations."""
        if not self.inv.names:
            return super().solve(s_steps, v0)
        v, iters, state = self._settle(np.asarray(s_steps, complex), v0)
        self.last = state
        return v, iters

    def result(self, v: np.ndarray, s: np.ndarray, iters: int, ctrl_it: int) -> UnbalancedResult:
        """One solved snapshot (see :meth:`UnbalancedTwin.result`), its losses with the
        inverters at their settled P and Q (not the available power ``s`` gives them)."""
        return super().result(v, self.inverter_powers(s[:, None])[:, 0], iters, ctrl_it)

    def inverter_powers(self, s_steps: np.ndarray) -> np.ndarray:
        """``s_steps`` with the inverters' rows at the last settled P and Q (VA)."""
        s = np.array(s_steps, complex)
        if self.last is None:
            return s
        self._write(s, self.last.p_kw, self.last.q_kvar)
        return s

    def settled_powers(self, s_steps: np.ndarray) -> np.ndarray:
        """``s_steps`` with the inverters' rows at the settled P and Q of the first
        ``s_steps.shape[1]`` steps of the last solve (VA; the QSTS records a block's leading
        steps)."""
        s = np.array(s_steps, complex)
        if self.last is not None:
            n = s.shape[1]
            self._write(s, self.last.p_kw[:, :n], self.last.q_kvar[:, :n])
        return s

    def injected(self, v: np.ndarray, s_steps: np.ndarray) -> np.ndarray:
        """Complex power each inverter injects (kVA, inverters × steps) at solved voltages
        ``v`` with the settled powers: differs from the set point only on a phase outside
        the element's ``vminpu``-``vmaxpu`` (constant impedance there, as OpenDSS)."""
        s = self.inverter_powers(s_steps)
        allrows = np.concatenate(self.inv.rows)
        lb = self.loads
        vbr = branch_voltage(lb, v)
        i = load_currents(lb, vbr, s)
        flow = (vbr * np.conj(i))[allrows]
        out = np.empty((len(self.inv.rows), v.shape[1]), complex)
        k = 0
        for j, r in enumerate(self.inv.rows):
            out[j] = -flow[k : k + r.size].sum(axis=0) / 1e3
            k += r.size
        return out

    # --- the control loop -------------------------------------------------------------
    def _measure(self, v: np.ndarray) -> np.ndarray:
        out = np.empty((len(self.inv.names), v.shape[1]))
        allrows = np.concatenate(self.inv.rows)
        vbr = np.abs(_vbr(self, v, allrows))
        k = 0
        for i, r in enumerate(self.inv.rows):
            out[i] = vbr[k : k + r.size].mean(axis=0) / self.inv.vbase[i]
            k += r.size
        return out

    def _write(self, s: np.ndarray, p_kw: np.ndarray, q_kvar: np.ndarray) -> None:
        for i, r in enumerate(self.inv.rows):
            s[r] = -(p_kw[i] + 1j * q_kvar[i])[None, :] * 1e3 / r.size

    def _pf(self, s: np.ndarray, v0: np.ndarray | None, tol: float) -> tuple[np.ndarray, int]:
        saved = self.opts
        self.opts = dataclasses.replace(saved, tol_pu=tol)
        try:
            return UnbalancedTwin.solve(self, s, v0)
        finally:
            self.opts = saved

    def _targets(self, vm: np.ndarray, p_avail: np.ndarray, q_own: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Wanted kvar and kW per inverter and step at voltages ``vm`` (pu)."""
        q, p = q_own.copy(), p_avail.copy()
        inv = self.inv
        for ci, c in enumerate(self.controls):
            sel = inv.ctl == ci
            if not np.any(sel):
                continue
            if c.mode in ("voltvar", "vv_vw"):
                q[sel] = c.voltvar.at(vm[sel]) * inv.qmax[sel, None]
            if c.mode in ("voltwatt", "vv_vw"):
                cap = c.voltwatt.at(vm[sel]) * inv.pmpp[sel, None]
                p[sel] = np.where(p_avail[sel] > 0, np.minimum(p_avail[sel], cap), p_avail[sel])
        room = np.sqrt(np.maximum(inv.kva[:, None] ** 2 - q**2, 0.0))
        q = np.clip(q, -inv.kva[:, None], inv.kva[:, None])
        return q, np.clip(p, -room, room)

    def _settle(self, s_in: np.ndarray, v0: np.ndarray | None
                ) -> tuple[np.ndarray, int, InverterState]:  # fmt: skip
        inv, steps = self.inv, s_in.shape[1]
        p_avail = np.array([-s_in[r].real.sum(axis=0) / 1e3 for r in inv.rows])
        q_own = np.array([-s_in[r].imag.sum(axis=0) / 1e3 for r in inv.rows])
        p, q = p_avail.copy(), q_own.copy()
        if v0 is not None:  # warm start: the curves at the previous voltages
            q, p = self._targets(self._measure(v0), p_avail, q_own)
        dq = np.array([self.controls[c].delta_q for c in inv.ctl])[:, None] * np.ones((1, steps))
        dp = np.array([self.controls[c].delta_p for c in inv.ctl])[:, None] * np.ones((1, steps))
        var_tol = np.array([self.controls[c].var_tol for c in inv.ctl])[:, None]
        v_tol = min(c.v_tol for c in self.controls)
        max_it = max(c.max_iter for c in self.controls)
        s = s_in.copy()
        iters, vm_prev, eq_prev, ep_prev = 0, None, None, None
        base_tol, dvm, tight = self.opts.tol_pu, 1e-3, False
        for it in range(1, max_it + 1):
            self._write(s, p, q)
            # early control iterations need no tighter a power flow than their own moves
            tol = base_tol if tight else max(base_tol, min(1e-4, 0.05 * dvm))
            v, n = self._pf(s, v0, tol)
            iters += n
            v0 = v
            vm = self._measure(v)
            qt, pt = self._targets(vm, p_avail, q_own)
            eq, ep = qt - q, pt - p
            ok_q = np.abs(eq) <= var_tol * inv.qmax[:, None]
            ok_p = np.abs(ep) <= var_tol * np.maximum(inv.pmpp[:, None], 1e-9)
            dvm = float(np.max(np.abs(vm - vm_prev))) if vm_prev is not None else 1e-3
            if vm_prev is not None and dvm <= v_tol and np.all(ok_q) and np.all(ok_p):
                if tol <= base_tol:
                    self.control_iterations += it
                    return v, iters, InverterState(list(inv.names), p, q, vm, it)
                tight = True
            if eq_prev is not None and ep_prev is not None:
                dq = np.where((eq * eq_prev < 0) & (np.abs(eq) > 0.5 * np.abs(eq_prev)), dq / 2, dq)
                dp = np.where((ep * ep_prev < 0) & (np.abs(ep) > 0.5 * np.abs(ep_prev)), dp / 2, dp)
            q, p = q + dq * eq, p + dp * ep
            vm_prev, eq_prev, ep_prev = vm, eq, ep
        raise ConvergenceError(
            f"{self.grid.name}: inverter controls did not settle in {max_it} control iterations "
            f"(largest kvar step {float(np.max(np.abs(eq))):.3g})"
        )


def has_inverters(grid: ThreePhaseGrid) -> bool:
    """Whether ``grid`` has any enabled smart-inverter control (InvControl)."""
    return any(c.enabled for c in grid.invcontrols)


def warn_inverters_ignored(grid: ThreePhaseGrid, study: str) -> bool:
    """Log a warning (and return True) where ``grid`` has enabled InvControls that ``study``
    does not model (its inverters stay at their set points): said, never silent."""
    if not has_inverters(grid):
        return False
    names = ", ".join(c.name for c in grid.invcontrols if c.enabled)
    log.warning(
        "%s: %s does not model smart inverters: invcontrol %s left out (inverters at their "
        "set points)", grid.name, study, names,
    )  # fmt: skip
    return True


def twin_for(
    grid: ThreePhaseGrid,
    opts: SolveOptions | None = None,
    controls: list[InverterControl] | None = None,
    inverters: bool = True,
) -> UnbalancedTwin:
    """The twin a study of ``grid`` should run: an :class:`InverterTwin` (its smart
    inverters on their curves in every solve) where the grid has an enabled InvControl (or
    ``controls`` are given), else a plain :class:`UnbalancedTwin`. ``inverters=False``: a
    study that deliberately leaves the grid's inverters out (logged)."""
    if not inverters:
        if has_inverters(grid) or controls:
            log.info("%s: smart inverters left out on request", grid.name)
        return UnbalancedTwin(grid, opts)
    if controls is not None or has_inverters(grid):
        return InverterTwin(grid, opts, controls)
    return UnbalancedTwin(grid, opts)


def _vbr(twin: UnbalancedTwin, v: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Voltage across the given load branches (V), rows × steps."""
    lb = twin.loads
    a, b = lb.a[rows], lb.b[rows]
    return v[a] - np.where((b >= 0)[:, None], v[np.maximum(b, 0)], 0.0)
