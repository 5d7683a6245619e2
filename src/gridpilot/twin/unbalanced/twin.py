"""The unbalanced twin: snapshot power flow with OpenDSS's static controls, and batches."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gridpilot.errors import ConvergenceError, ValidationError
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced.controls import (
    CLOSE,
    OPEN,
    RegSensor,
    cap_measure,
    cap_sample,
    cap_sensors,
    monitored_yprim,
    neutral_taps,
    reg_delay,
    reg_measure,
    reg_sensors,
    reg_wants,
    static_tap_move,
    watches_reverse,
)
from gridpilot.twin.unbalanced.loads import compile_loads
from gridpilot.twin.unbalanced.lowrank import LowRankFactor, one_blas_thread
from gridpilot.twin.unbalanced.network import (
    compile_network,
    restamp_capacitor,
    restamp_transformer,
)
from gridpilot.twin.unbalanced.results import UnbalancedResult
from gridpilot.twin.unbalanced.solver import Factor, SolveOptions, load_admittance, solve_steps

if TYPE_CHECKING:
    from gridpilot.twin.unbalanced.qsts_stats import QstsResult

log = logging.getLogger(__name__)


def _own_copy(grid: ThreePhaseGrid) -> ThreePhaseGrid:
    """A grid whose regulating transformers and capacitors the twin may change freely."""
    regulated = {r.transformer for r in grid.regcontrols}
    return dataclasses.replace(
        grid,
        transformers=[copy.deepcopy(t) if t.name.lower() in regulated else t for t in grid.transformers],
        capacitors=[copy.deepcopy(c) for c in grid.capacitors],
    )  # fmt: skip


class UnbalancedTwin:
    """Power flow on a :class:`ThreePhaseGrid` (fixed-point current injection, OpenDSS-like).

    The twin keeps its own regulator taps and capacitor states (starting from the grid's);
    the grid object is never changed.
    """

    def __init__(self, grid: ThreePhaseGrid, opts: SolveOptions | None = None) -> None:
        if not isinstance(grid, ThreePhaseGrid):
            raise ValidationError(
                f"UnbalancedTwin needs a ThreePhaseGrid, got {type(grid).__name__}"
            )
        self.grid = _own_copy(grid)
        self.opts = opts or SolveOptions()
        self.net = compile_network(self.grid)
        self.loads = compile_loads(self.grid, self.net)
        self.y_loads, self.inc, self.yeq_b = load_admittance(self.net, self.loads)
        self.regs = reg_sensors(self.grid, self.net)
        self.caps = cap_sensors(self.grid, self.net)
        self._cap_y = [monitored_yprim(self.grid, s) for s in self.caps]
        self.rev_mode: dict[str, bool] = {}  # static mode: regulators in reverse/cogen mode
        self._factor: LowRankFactor | None = None
        self._compiled: object | None = None  # the compiled QSTS engine (qsts_fast), lazily
        self.factorisations = 0

    # --- state -------------------------------------------------------------------------
    def factor(self) -> LowRankFactor:
        """The system matrix at the present taps and capacitor states: factorised once, then
        corrected by a low-rank update per change (see :mod:`.lowrank`)."""
        if self._factor is None:
            self._factor = LowRankFactor(Factor(self.net, self.y_loads), self.net)
            self.factorisations += 1
        return self._factor

    def _changed(self) -> None:
        if self._factor is not None:
            self._factor.dirty = True

    def taps(self) -> dict[str, float]:
        """Present tap (pu) of each regulated transformer's tap winding."""
        out = {}
        for s in self.regs:
            t = self.grid.transformer(s.xf)
            out[s.ctl.name.lower()] = t.windings[s.ctl.tap_winding - 1].tap
        return out

    def set_tap(self, reg: str, tap: float) -> None:
        """Impose a regulator's tap (pu), clamped to the winding's range."""
        s = next((x for x in self.regs if x.ctl.name.lower() == reg.lower()), None)
        if s is None:
            raise ValidationError(f"unknown regcontrol {reg!r}")
        w = self.grid.transformer(s.xf).windings[s.ctl.tap_winding - 1]
        new = min(max(tap, w.min_tap), w.max_tap)
        if new != w.tap:
            w.tap = new
            restamp_transformer(self.net, s.xf)
            self._changed()

    def cap_states(self) -> dict[str, list[int]]:
        """Step states of every capacitor."""
        return {c.name.lower(): list(c.states) for c in self.grid.capacitors}

    def set_cap(self, name: str, states: list[int]) -> None:
        """Impose a capacitor's step states."""
        cap = next((c for c in self.grid.capacitors if c.name.lower() == name.lower()), None)
        if cap is None:
            raise ValidationError(f"unknown capacitor {name!r}")
        if list(states) != cap.states:
            cap.states = [int(x) for x in states]
            restamp_capacitor(self.net, cap.name.lower())
            self._changed()

    # --- solving -----------------------------------------------------------------------
    def solve(self, s_steps: np.ndarray, v0: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Node voltages (V, nodes × steps) for load-branch powers ``s_steps`` (VA)."""
        f = self.factor()
        return solve_steps(self.net, self.loads, f, self.inc, self.yeq_b, s_steps, v0, self.opts)

    def base_powers(self, mult: float = 1.0) -> np.ndarray:
        """The load branches' nominal powers (VA) times ``mult``, one column."""
        fixed = np.array(
            [self.grid.loads[i].status != "variable" for i in self.loads.load_of], bool
        )
        return np.where(fixed, self.loads.s_va, self.loads.s_va * mult)[:, None]

    def powerflow(self, control_mode: str = "static", load_mult: float = 1.0) -> UnbalancedResult:
        """One snapshot. ``control_mode="static"`` moves regulator taps and switches
        capacitors as OpenDSS's static control mode does; ``"off"`` keeps them as they are.
        Returns an :class:`UnbalancedResult` (voltages per node-phase, currents, losses)."""
        if control_mode not in ("static", "off"):
            raise ValidationError(f"control_mode must be 'static' or 'off', got {control_mode!r}")
        s = self.base_powers(load_mult)
        with one_blas_thread():  # tiny dense solves: threads only wait
            v, iters = self.solve(s)
            ctrl_it = 0
            if control_mode == "static":
                v, more, ctrl_it = self.settle(v, lambda v0: self.solve(s, v0))
                iters += more
            return self.result(v[:, 0], s[:, 0], iters, ctrl_it)

    def settle(
        self,
        v: np.ndarray,
        resolve: Callable[[np.ndarray], tuple[np.ndarray, int]],
        acts: Callable[[tuple[str, str]], bool] | None = None,
        max_rounds: int = 100,
    ) -> tuple[np.ndarray, int, int]:
        """Let the regulators' and capacitors' static controls act from the solved voltages
        ``v`` (nodes × 1) until none wants to, as OpenDSS's static control mode does: each
        round the pending actions with the shortest delay act (taps and capacitor steps change
        on this twin), then ``resolve(v)`` solves again and returns ``(v, iterations)``.

        ``acts(key)`` says which controls may act (``key`` is ``("reg" | "cap", name)``;
        default all), e.g. only those on energised nodes. Returns the settled voltages, the
        solver iterations ``resolve`` took and the number of rounds. Raises
        :class:`~gridpilot.errors.ConvergenceError` when the controls still want to act
        after ``max_rounds`` rounds."""
        armed: dict[tuple[str, str], float] = {}
        iters = rounds = 0
        while True:
            pending = {k: x for k, x in self._sample(v[:, 0]).items() if acts is None or acts(k)}
            armed = {k: armed.get(k, t) for k, (t, _) in pending.items()}
            if not armed:
                return v, iters, rounds
            rounds += 1
            if rounds > max_rounds:
                raise ConvergenceError(
                    f"{self.grid.name}: static controls did not settle in {max_rounds} rounds"
                )
            first = min(armed.values())
            for key, t in list(armed.items()):
                if t <= first + 1e-9:
                    self._act(key, pending[key][1])
                    del armed[key]
            v, more = resolve(v)
            iters += more

    def _sample(self, v: np.ndarray) -> dict[tuple[str, str], tuple[float, int]]:
        """Actions the controls want now: key -> (delay s, signed taps or CLOSE/OPEN)."""
        out: dict[tuple[str, str], tuple[float, int]] = {}
        vv = v[:, None]
        for rs in self.regs:
            if rs.ctl.max_tap_change:
                out.update(self._reg_wants(rs, reg_measure(rs, self.net, vv)[:, 0]))
        for cs, y in zip(self.caps, self._cap_y, strict=True):
            cap = next(c for c in self.grid.capacitors if c.name.lower() == cs.cap)
            m = {k: float(x[0]) for k, x in cap_measure(cs, self.net, vv, y).items()}
            on = sum(cap.states)
            want, should = cap_sample(cs, m, on > 0, len(cap.states) - on, 0)
            if should and want:
                delay = cs.ctl.delay_s if want == CLOSE else cs.ctl.delay_off_s
                out[("cap", cs.ctl.name.lower())] = (delay, want)
        return out

    def _reg_wants(self, rs: RegSensor, m: np.ndarray) -> dict[tuple[str, str], tuple[float, int]]:
        """A regulator's static sample (``m``: its ``reg_measure`` column): a reverse-mode
        toggle after ``rev_delay_s`` while the power flows the other way past the threshold
        (key ``("rev", name)``), and its tap change (reverse neutral: to tap 1.0)."""
        ctl, name = rs.ctl, rs.ctl.name.lower()
        w = self.grid.transformer(rs.xf).windings[ctl.tap_winding - 1]
        out: dict[tuple[str, str], tuple[float, int]] = {}
        rev = self.rev_mode.get(name, False)
        if watches_reverse(rs):
            thr = ctl.rev_threshold_kw * 1e3
            if (m[2] > thr) if rev else (m[2] < -thr):
                out[("rev", name)] = (ctl.rev_delay_s, 1)
            if rev and ctl.rev_neutral:
                n = neutral_taps(w.tap, w.tap_step)
                return {**out, ("reg", name): (ctl.tapdelay_s, n)} if n else out
        back, cogen = rev and not ctl.cogen, rev and ctl.cogen
        vact = float(m[1] if rev else m[0])
        n, _ = reg_wants(rs, w.tap, w.tap_step, vact, float(m[3]), back, cogen)
        if (n > 0 and w.tap < w.max_tap - 1e-9) or (n < 0 and w.tap > w.min_tap + 1e-9):
            out[("reg", name)] = (reg_delay(rs, vact, w.tap, back), n)
        return out

    def _act(self, key: tuple[str, str], value: int) -> None:
        kind, name = key
        if kind == "rev":
            self.rev_mode[name] = not self.rev_mode.get(name, False)
            return
        if kind == "reg":
            rs = next(x for x in self.regs if x.ctl.name.lower() == name)
            w = self.grid.transformer(rs.xf).windings[rs.ctl.tap_winding - 1]
            move = static_tap_move(value, rs.ctl.max_tap_change)
            self.set_tap(name, w.tap + move * w.tap_step)
            return
        cs = next(x for x in self.caps if x.ctl.name.lower() == name)
        cap = next(c for c in self.grid.capacitors if c.name.lower() == cs.cap)
        states = list(cap.states)
        if value == CLOSE and 0 in states:
            states[states.index(0)] = 1
        elif value == OPEN and 1 in states:
            states[len(states) - 1 - states[::-1].index(1)] = 0
        self.set_cap(cap.name, states)

    def qsts(
        self,
        steps: int,
        resolution_s: float = 900.0,
        start_h: float = 0.0,
        progress: Callable[[int, int], None] | None = None,
        **kw: object,
    ) -> QstsResult:
        """Quasi-static time series with stateful controls (see :mod:`.qsts`); returns a
        :class:`QstsResult`. The twin's taps and capacitor states move on as the run goes."""
        from gridpilot.twin.unbalanced.qsts import QstsOptions, run_qsts

        opts = QstsOptions(steps=steps, resolution_s=resolution_s, start_h=start_h, **kw)  # type: ignore[arg-type]
        return run_qsts(self, opts, progress)

    # --- results -----------------------------------------------------------------------
    def losses_va(self, v: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Total losses (VA) per step: source power minus load power."""
        from gridpilot.twin.unbalanced.loads import branch_voltage, load_currents

        st = self.net.src_stamp
        n1 = len(st.idx) // 2
        idx = st.idx[:n1]
        keep = idx >= 0
        yss = st.y[:n1, :n1]
        vs = v[idx[keep]]
        i_inj = self.net.i_source[idx[keep]][:, None] - yss[np.ix_(keep, keep)] @ vs
        p_src = np.sum(vs * np.conj(i_inj), axis=0)
        vbr = branch_voltage(self.loads, v)
        p_load = np.sum(vbr * np.conj(load_currents(self.loads, vbr, s)), axis=0)
        return p_src - p_load

    def result(self, v: np.ndarray, s: np.ndarray, iters: int, ctrl_it: int) -> UnbalancedResult:
        """Wrap one solved snapshot."""
        br = self.net.branch_rows
        i_br = br @ v if br is not None else np.zeros(0, complex)
        loss = complex(self.losses_va(v[:, None], s[:, None])[0])
        return UnbalancedResult(
            grid=self.grid.name,
            nodes=self.net.nodes,
            v=v,
            vbase_v=self.net.vbase_v,
            branch_i_a=i_br,
            branch_meta=self.net.branch_meta,
            losses_kw=loss.real / 1e3,
            losses_kvar=loss.imag / 1e3,
            iterations=iters,
            control_iterations=ctrl_it,
            taps=self.taps(),
            cap_states=self.cap_states(),
        )
