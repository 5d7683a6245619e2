"""The feeder of a hosting study: the twin with one zero-power DER branch per candidate
node-phase, and what the checks measure on solved columns (voltages, branch loading,
source and regulator power, unbalance)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.threephase import Load, Terminal, ThreePhaseGrid
from gridpilot.twin.unbalanced import SolveOptions, UnbalancedTwin, unbalance_factor
from gridpilot.twin.unbalanced.inverters import warn_inverters_ignored
from gridpilot.twin.unbalanced.loads import branch_voltage
from gridpilot.twin.unbalanced.results import three_phase_buses
from gridpilot.twin.unbalanced.solver import load_admittance

PREFIX = "hc__"
MAX_ITER = 30
TOL_PU = 1e-8


def phase_nodes(grid: ThreePhaseGrid) -> list[tuple[str, int]]:
    """Every node-phase a DER may connect to: phases 1-3 of energised buses."""
    return [(b, k) for b, k in grid.nodes() if 1 <= k <= 3 and grid.bus_kv_ln.get(b, 0) > 0]


def check_nodes(grid: ThreePhaseGrid, nodes: list[tuple[str, int]]) -> None:
    """Raise :class:`ValidationError` naming a DER node-phase the grid does not have."""
    have = set(grid.nodes())
    for b, k in nodes:
        if (b, k) not in have or not (1 <= k <= 3):
            raise ValidationError(
                f"DER at {b}.{k}: bus {b!r} has no phase {k} in {grid.name} "
                f"(its phases: {sorted(p for bb, p in have if bb == b) or 'none, no such bus'})"
            )
        if grid.bus_kv_ln.get(b, 0) <= 0:
            raise ValidationError(f"DER at {b}.{k}: bus {b!r} has no voltage base")


def with_candidates(grid: ThreePhaseGrid, nodes: list[tuple[str, int]]) -> ThreePhaseGrid:
    """The grid plus one single-phase wye, constant-power, zero-kW DER per node-phase
    (``hc__<bus>_<phase>``; constant power from 0.5 to 1.5 pu, as an OpenDSS generator)."""
    extra = [
        Load(name=f"{PREFIX}{b}_{k}", terminal=Terminal(b, (k, 0)), phases=1, conn="wye",
             kv=grid.bus_kv_ln[b], kw=0.0, kvar=0.0, model=1, vminpu=0.5, vmaxpu=1.5,
             kind="load", status="variable")
        for b, k in nodes
    ]  # fmt: skip
    return dataclasses.replace(grid, loads=[*grid.loads, *extra])


class HostingTwin(UnbalancedTwin):
    """The unbalanced twin, able to re-centre its loads' admittances at an operating point
    (the study's columns all sit near its critical hour: fewer iterations each)."""

    def recentre(self, v: np.ndarray, s: np.ndarray) -> None:
        """Refactorise with the loads' admittances at voltages ``v`` (V, nodes) and load
        powers ``s`` (VA, branches): per load branch ``conj(S) / |V|²``, the nominal value
        where the branch voltage is outside 0.5-1.5 of its base."""
        vm = np.abs(branch_voltage(self.loads, v[:, None])[:, 0])
        vb = self.loads.vbase_v
        ok = (vm > 0.5 * vb) & (vm < 1.5 * vb)
        yeq = np.conj(s) / np.where(ok, vm, vb) ** 2
        self.y_loads, _, self.yeq_b = load_admittance(self.net, self.loads, yeq)
        self._factor = None  # the engine has no public refactorise: the next solve rebuilds
        self.factor()


@dataclass
class Measure:
    """Quantities of solved columns that the checks compare with the base case."""

    v_pu: np.ndarray  # nodes × cols
    loading: np.ndarray  # branch conductors × cols (pu of norm amps; 0 where unrated)
    p_src_kw: np.ndarray  # cols
    p_reg_kw: np.ndarray  # regulators × cols (into winding 1)
    vuf_pct: np.ndarray  # three-phase buses × cols


class Feeder:
    """A twin with candidate DER branches; ``branch[i]`` is candidate ``nodes[i]``'s
    load-branch index."""

    def __init__(self, grid: ThreePhaseGrid, nodes: list[tuple[str, int]]) -> None:
        check_nodes(grid, nodes)
        warn_inverters_ignored(grid, "the hosting-capacity study")
        self.nodes = nodes
        # sizes near a limit converge in a few iterations; a column still moving after
        # ``max_iter`` is far beyond every limit and counts as failing (no_convergence)
        self.twin = HostingTwin(
            with_candidates(grid, nodes), SolveOptions(max_iter=MAX_ITER, tol_pu=TOL_PU)
        )
        names = self.twin.loads.names
        pos = {n: i for i, n in enumerate(names)}
        self.branch = np.array([pos[f"load.{PREFIX}{b}_{k}"] for b, k in nodes], np.int64)
        self.node_idx = np.array([self.twin.net.index[nd] for nd in nodes], np.int64)
        net = self.twin.net
        rating = np.array([m[3] for m in net.branch_meta]) if net.branch_meta else np.zeros(0)
        self.rating = np.where(rating > 0, rating, np.inf)
        self.tri_buses, self.tri = three_phase_buses(net.nodes)
        self.reg_xf = sorted({s.xf.lower() for s in self.twin.regs})
        self.initial_taps = self.twin.taps()
        self.initial_caps = self.twin.cap_states()

    def reset_controls(self) -> None:
        """Taps and capacitor states back to the grid's own (each critical hour settles
        from there, as a fresh OpenDSS snapshot does)."""
        for name, tap in self.initial_taps.items():
            self.twin.set_tap(name, tap)
        for name, states in self.initial_caps.items():
            self.twin.set_cap(name, states)

    def measure(self, v: np.ndarray) -> Measure:
        """Checked quantities of solved node voltages ``v`` (V, nodes × cols)."""
        net = self.twin.net
        vpu = np.abs(v) / net.vbase_v[:, None]
        br = net.branch_rows
        loading = (
            np.abs(br @ v) / self.rating[:, None] if br is not None else np.zeros((0, v.shape[1]))
        )
        vuf = (
            100 * unbalance_factor(np.moveaxis(v[self.tri], 2, 0)).T
            if len(self.tri_buses)
            else np.zeros((0, v.shape[1]))
        )
        return Measure(vpu, loading, self._p_source(v), self._p_regs(v), vuf)

    def _p_source(self, v: np.ndarray) -> np.ndarray:
        st = self.twin.net.src_stamp
        n1 = len(st.idx) // 2
        idx = st.idx[:n1]
        keep = idx >= 0
        vs = v[idx[keep]]
        i_inj = self.twin.net.i_source[idx[keep]][:, None] - st.y[:n1, :n1][np.ix_(keep, keep)] @ vs
        return np.sum(vs * np.conj(i_inj), axis=0).real / 1e3

    def _p_regs(self, v: np.ndarray) -> np.ndarray:
        out = np.zeros((len(self.reg_xf), v.shape[1]))
        for r, name in enumerate(self.reg_xf):
            st = self.twin.net.xf_stamps[name]
            xf = self.twin.grid.transformer(name)
            n1 = len(xf.windings[0].terminal.nodes)
            idx = st.idx
            vt = np.where((idx >= 0)[:, None], v[np.maximum(idx, 0)], 0.0)
            i1 = st.y[:n1] @ vt
            out[r] = np.sum(vt[:n1] * np.conj(i1), axis=0).real / 1e3
        return out
