"""The three-phase world's physics: the feeder per switching state in the unbalanced twin, the
regulators' and capacitors' local controls stepped in time, and the maps from the twin's
node-phases and branch conductors to the balanced view's buses and lines (see
:mod:`gridpilot.agent.world3p`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import GridpilotError, ValidationError
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.balanced import PhaseView
from gridpilot.model.threephase.elements import Winding
from gridpilot.twin.unbalanced import UnbalancedResult, UnbalancedTwin
from gridpilot.twin.unbalanced.inverters import InverterTwin, twin_for
from gridpilot.twin.unbalanced.islands import energised_subgrid
from gridpilot.twin.unbalanced.loads import branch_voltage, load_currents
from gridpilot.twin.unbalanced.timectl import TimeControls, measure, next_due

log = logging.getLogger(__name__)
CACHE_SIZE = 16  # switching states whose compiled twin is kept
MAX_ROUNDS = 100  # control rounds at one time (OpenDSS: maxcontroliter, as the QSTS runs)
MAX_EVENTS = 2000  # queued control actions executed within one settling window


def regulator_names(grid: ThreePhaseGrid) -> list[str]:
    """The feeder's enabled regulator controls (names, lower case) in the feeder's order: a
    position in this list is a regulator's id in the loop's tap commands."""
    return [r.name.lower() for r in grid.regcontrols if r.enabled]


@dataclass
class Compiled:
    """One switching state: its twin and the maps from its nodes and branches to the full
    feeder's node list and the view's lines."""

    twin: UnbalancedTwin
    live: set[str]
    node_full: np.ndarray  # twin node -> full node position
    load_full: np.ndarray  # twin load -> full grid load position
    row_line: np.ndarray  # branch conductor row -> view line position (-1 none)
    row_node: np.ndarray  # branch conductor row -> twin node of its terminal-1 conductor
    row_rating: np.ndarray  # conductor ampacity (A, 0 unknown)
    v_last: np.ndarray | None = None  # the last solution (warm start)


@dataclass
class Step:
    """One solved step: the full-node result and the per-view quantities."""

    result: UnbalancedResult
    live_nodes: np.ndarray  # bool per full node
    line_loading_pct: np.ndarray
    line_p_mw: np.ndarray
    line_q_mvar: np.ndarray
    source_p_mw: float
    converged: bool


class PhasePhysics:
    """The unbalanced twin of ``grid`` under switching, with time-stepped local controls.

    The regulators and capacitor controls run on the twin's own time-mode rules
    (:class:`~gridpilot.twin.unbalanced.timectl.TimeControls`, OpenDSS's ``controlmode=time``
    as the QSTS engines run it): :meth:`solve` is one fixed step (the controls sampled at
    its end, the actions due by then executed), :meth:`settle` gives them a window to act
    at each queued action's own time. Regulators held at a commanded tap are not sampled;
    capacitors in dead sections are not in the switching state's twin.
    """

    def __init__(self, grid: ThreePhaseGrid, view: PhaseView) -> None:
        self.grid = grid
        self.view = view
        #: time of day (h) the owner sets before a solve (time-type CapControls); None: that of
        #: the controls' clock :attr:`t_s`
        self.tod_h: float | None = None
        self.t_s = 0.0  # the controls' clock (s since the start)
        self.controls = TimeControls()
        self._cache: dict[frozenset[str], Compiled] = {}
        full = self.compiled(frozenset())
        self.nodes = list(full.twin.net.nodes)
        self.vbase_v = full.twin.net.vbase_v.copy()
        self.taps = full.twin.taps()
        self.caps = full.twin.cap_states()
        self.tap_ops = 0
        self.cap_ops = 0
        #: regulators held at a commanded tap (regcontrol -> pu): their local control is off
        self.held: dict[str, float] = {}

    def _winding(self, name: str) -> Winding:
        """The tapped winding of regulator ``name`` (a regcontrol; named error if none)."""
        key = name.lower()
        rc = next((r for r in self.grid.regcontrols if r.name.lower() == key), None)
        if rc is None or key not in self.taps:
            raise ValidationError(f"regulator: {name!r} is not a regulator of {self.grid.name}")
        xf = next(t for t in self.grid.transformers if t.name.lower() == rc.transformer.lower())
        return xf.windings[rc.tap_winding - 1]

    def tap_range(self, name: str) -> tuple[float, float]:
        """The (lowest, highest) tap in pu that regulator ``name``'s winding can reach."""
        w = self._winding(name)
        return float(w.min_tap), float(w.max_tap)

    def hold(self, name: str, tap_pu: float) -> None:
        """Hold regulator ``name`` (a regcontrol) at ``tap_pu``, clipped to its winding's
        range and rounded to its step (a SCADA tap command); its local control stops."""
        key = name.lower()
        w = self._winding(name)
        if not np.isfinite(tap_pu) or not 0.5 <= tap_pu <= 1.5:
            raise ValidationError(f"tap of {name}: must be within 0.5-1.5 pu, got {tap_pu!r}")
        step = w.tap_step if w.tap_step > 0 else 0.00625
        tap = float(np.clip(1.0 + round((tap_pu - 1.0) / step) * step, w.min_tap, w.max_tap))
        if tap != self.taps[key]:
            self.tap_ops += 1
        self.held[key] = tap
        self.taps[key] = tap

    # --- switching states -------------------------------------------------------------------
    def compiled(self, open_branches: frozenset[str]) -> Compiled:
        """The compiled twin of the switching state with ``open_branches`` open and every
        other switch closed (cached; the empty set, every switch closed, gives the full node
        list)."""
        c = self._cache.get(open_branches)
        if c is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(k for k in self._cache if k))
            c = self._compile(open_branches)
            self._cache[open_branches] = c
        return c

    def _compile(self, open_branches: frozenset[str]) -> Compiled:
        en = energised_subgrid(self.grid, open_branches, close_switches=True)
        tw = twin_for(en.grid)  # the feeder's smart inverters on their curves in every solve
        full_index = (
            {n: i for i, n in enumerate(self.nodes)} if open_branches else None
        )  # the full state is compiled first: its own order
        node_full = (
            np.arange(tw.net.n)
            if full_index is None
            else np.array([full_index[n] for n in tw.net.nodes], np.int64)
        )
        load_full = np.arange(len(en.grid.loads), dtype=np.int64)  # dead ones kept, disabled
        line_of = self.view.branch_line()
        by_name = {b.name: b for b in en.grid.branches}
        meta = tw.net.branch_meta
        row_line = np.array([line_of.get(m[0].lower(), 0) - 1 for m in meta], np.int64)
        row_node = np.array(
            [tw.net.index[(by_name[m[0]].t1.bus, m[2])] for m in meta], np.int64
        ).reshape(-1)
        rating = np.array([m[3] for m in meta], np.float64)
        return Compiled(tw, en.live, node_full, load_full, row_line, row_node, rating)

    # --- one step ----------------------------------------------------------------------------
    def solve(self, open_branches: frozenset[str], mult_p: np.ndarray, mult_q: np.ndarray,
              step_s: float) -> Step:  # fmt: skip
        """One time step of ``step_s`` with per-load multipliers (of each feeder load's
        nominal kW/kvar): the clock moves on, the controls sample at the step's end and the
        actions due by then act (re-solved until none is due, OpenDSS's fixed-step time
        mode: a regulator's follow-up taps come ``tapdelay`` later, at the next step);
        returns the :class:`Step`."""
        self.t_s += step_s
        return self._run(open_branches, mult_p, mult_q, self.t_s, self.t_s)

    def settle(self, open_branches: frozenset[str], mult_p: np.ndarray, mult_q: np.ndarray,
               window_s: float) -> Step:  # fmt: skip
        """The feeder at these loads given ``window_s`` for its controls to act, from unarmed
        controls (a study, or the state before the start): sampled now and at each queued
        action's time within the window, by the same rules as :meth:`solve`."""
        self.controls.reset()
        t0 = self.t_s
        self.t_s += window_s
        return self._run(open_branches, mult_p, mult_q, t0, self.t_s)

    def _run(self, open_branches: frozenset[str], mult_p: np.ndarray, mult_q: np.ndarray,
             t_s: float, until_s: float) -> Step:  # fmt: skip
        c = self.compiled(open_branches)
        tw = c.twin
        for name, tap in {**self.taps, **self.held}.items():
            if any(s.ctl.name.lower() == name for s in tw.regs):
                tw.set_tap(name, tap)
        for name, st in self.caps.items():
            if name in tw.net.cap_stamps:  # a capacitor in a dead section is not in the network
                tw.set_cap(name, st)
        live = {s.ctl.name.lower() for s in tw.regs} | {s.ctl.name.lower() for s in tw.caps}
        self.controls.reset(keep=live - set(self.held))  # dead or held: its control restarts
        base = tw.base_powers(1.0)[:, 0]
        lo = c.load_full[tw.loads.load_of]
        s = (base.real * mult_p[lo] + 1j * base.imag * mult_q[lo])[:, None]
        ops = sum(self.controls.tap_ops.values()), sum(self.controls.cap_ops.values())
        try:
            v, iters = tw.solve(s, c.v_last)
            v, iters = self._act(tw, s, v, t_s, iters)
            for _ in range(MAX_EVENTS):  # a settling window: each queued action at its time
                t = next_due(self.controls)
                if t is None or t > until_s + 1e-6:
                    break
                v, iters = self._act(tw, s, v, max(t, t_s), iters)
        except (GridpilotError, np.linalg.LinAlgError, RuntimeError) as exc:  # reported, not raised
            log.warning("three-phase power flow failed: %s", exc)
            return self._failed(c)
        c.v_last = v
        self.tap_ops += sum(self.controls.tap_ops.values()) - ops[0]
        self.cap_ops += sum(self.controls.cap_ops.values()) - ops[1]
        if isinstance(tw, InverterTwin):  # the inverters at their settled P and Q
            s = tw.inverter_powers(s)
        self.taps.update(tw.taps())
        self.caps.update(tw.cap_states())
        return self._step(c, v[:, 0], s[:, 0], iters)

    def _act(self, tw: UnbalancedTwin, s: np.ndarray, v: np.ndarray, t_s: float,
             iters: int) -> tuple[np.ndarray, int]:  # fmt: skip
        """The controls sampled at ``t_s`` and the actions due, re-solved until none acts."""
        for _ in range(MAX_ROUNDS):
            regs, caps = measure(tw, v)
            r = [x[:, 0] for x in regs]
            m = [{k: float(x[0]) for k, x in cm.items()} for cm in caps]
            if not self.controls.sample_and_act(tw, t_s, r, m, self.held, self.tod_h):
                break
            v, more = tw.solve(s, v)
            iters += more
        return v, iters

    def _step(self, c: Compiled, v: np.ndarray, s: np.ndarray, iters: int) -> Step:
        tw = c.twin
        n_full = len(self.nodes)
        v_full = np.zeros(n_full, complex)
        v_full[c.node_full] = v
        live = np.zeros(n_full, bool)
        live[c.node_full] = True
        br = tw.net.branch_rows
        i_br = br @ v if br is not None else np.zeros(0, complex)
        loss = complex(tw.losses_va(v[:, None], s[:, None])[0])
        vbr = branch_voltage(tw.loads, v[:, None])
        p_load = complex(np.sum(vbr * np.conj(load_currents(tw.loads, vbr, s[:, None]))))
        n_line = len(self.view.line_branch)
        loading = np.zeros(n_line)
        flow = np.zeros(n_line, complex)
        rows = c.row_line >= 0
        if rows.any():
            pct = np.where(
                c.row_rating > 0, 100 * np.abs(i_br) / np.maximum(c.row_rating, 1e-9), 0.0
            )
            np.maximum.at(loading, c.row_line[rows], pct[rows])
            np.add.at(flow, c.row_line[rows], (v[c.row_node] * np.conj(i_br))[rows])
        res = UnbalancedResult(
            grid=self.grid.name, nodes=self.nodes, v=v_full, vbase_v=self.vbase_v,
            branch_i_a=i_br, branch_meta=tw.net.branch_meta, losses_kw=loss.real / 1e3,
            losses_kvar=loss.imag / 1e3, iterations=iters, taps=dict(self.taps),
            cap_states={k: list(x) for k, x in self.caps.items()},
        )  # fmt: skip
        return Step(res, live, loading, flow.real / 1e6, flow.imag / 1e6,
                    (p_load.real + loss.real) / 1e6, True)  # fmt: skip

    def _failed(self, c: Compiled) -> Step:
        n_line = len(self.view.line_branch)
        res = UnbalancedResult(
            grid=self.grid.name, nodes=self.nodes, v=np.zeros(len(self.nodes), complex),
            vbase_v=self.vbase_v, branch_i_a=np.zeros(0, complex), branch_meta=[],
            losses_kw=float("nan"), losses_kvar=float("nan"), iterations=0,
        )  # fmt: skip
        z = np.zeros(n_line)
        return Step(
            res, np.zeros(len(self.nodes), bool), z, z.copy(), z.copy(), float("nan"), False
        )


__all__ = ["Compiled", "PhasePhysics", "Step", "regulator_names"]
